"""The block shape of each ggml tensor type, without importing gguf (and numpy) to learn it."""

from __future__ import annotations

# ggml type id -> (elements per block, bytes per block): gguf.GGML_QUANT_SIZES as of gguf
# 0.19. A type's id and block never change once ggml has it (GGUF files depend on them), so
# this copy cannot go stale; a newer type is looked up in gguf (tests/modelfile/test_quants.py
# checks the two agree). Importing gguf takes longer than a whole `promptspool submit`.
BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54),
    35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}  # fmt: skip


def block_of(kind: int) -> tuple[int, int] | None:
    """(elements, bytes) of one block of tensor type `kind`; None for a type unknown even to
    the installed gguf package."""
    if block := BLOCKS.get(kind):
        return block
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        return None
