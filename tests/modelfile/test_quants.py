"""The copy of ggml's block shapes agrees with the gguf package's, and defers to it beyond."""

from __future__ import annotations

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from worker.modelfile.quants import BLOCKS, block_of


def test_the_copy_agrees_with_gguf() -> None:
    known = {int(kind): shape for kind, shape in GGML_QUANT_SIZES.items()}
    assert {kind: known.get(kind) for kind in BLOCKS} == BLOCKS


def test_every_gguf_type_has_its_shape() -> None:
    for kind, shape in GGML_QUANT_SIZES.items():
        assert block_of(int(kind)) == shape, kind.name


def test_a_type_unknown_to_gguf_has_none() -> None:
    unknown = max(int(kind) for kind in GGMLQuantizationType) + 1000
    assert block_of(unknown) is None
