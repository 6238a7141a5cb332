"""A model's details from its GGUF header: what gguf.GGUFReader reports, without the vocabulary."""

from __future__ import annotations

import functools
import gc
import os
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import gguf
import pytest

from tests.conftest import SHARED_MODELS
from worker.modelfile.info import clear_cache, kv_bytes_per_token, read_model_info
from worker.modelfile.layout import scan_gguf
from worker.modelfile.reader import GgufArray

VOCABS = SHARED_MODELS / "vocab"
LLAMA_BPE, QWEN2 = "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf"
GEMMA4 = "ggml-vocab-gemma-4.gguf"


def vocab_file(name: str) -> Path:
    path = VOCABS / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def what_gguf_reader_says(path: Path) -> dict[str, Any]:
    """Every metadata value as GGUFReader reads it (arrays: their length, and short ones'
    items), the tensor table's figures; the reader itself (about 1 GB for a 262k
    vocabulary) is dropped before returning."""
    reader = gguf.GGUFReader(str(path))
    values: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own header fields (version, counts)
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            short = field.types[1] != gguf.GGUFValueType.STRING and len(field.data) <= 4096
            values[key] = (len(field.data), field.contents() if short else None)
        else:
            values[key] = field.contents()
    figures = {
        "values": values,
        "tensor_count": len(reader.tensors),
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
    }
    del reader
    gc.collect()
    return figures


@functools.cache
def reader_says(name: str) -> dict[str, Any]:
    """GGUFReader's figures for a vocabulary file, read once (15-30 s for each of them)."""
    return what_gguf_reader_says(vocab_file(name))


@pytest.mark.parametrize(
    ("name", "arch", "vocab", "context", "template"),
    [
        (LLAMA_BPE, "llama", 128_256, 8192, False),
        (QWEN2, "qwen2", 151_936, 32_768, True),
        (GEMMA4, "gemma4", 262_144, 262_144, True),
    ],
)
def test_vocabulary_files_read_as_gguf_reader_reads_them(
    name: str,
    arch: str,
    vocab: int,
    context: int,
    template: bool,
) -> None:
    path = vocab_file(name)
    expected = reader_says(name)
    clear_cache()
    layout = scan_gguf(path)
    read: dict[str, Any] = dict(layout.metadata)
    for key, value in layout.metadata.items():
        if isinstance(value, GgufArray):
            read[key] = (value.count, None if value.items is None else list(value.items))
    assert read == expected["values"]
    assert isinstance(tokens := layout.metadata["tokenizer.ggml.tokens"], GgufArray)
    assert tokens.items is None  # counted, never read
    info = read_model_info(path)
    values = expected["values"]
    assert (info.architecture, info.vocab_size, info.context_length) == (arch, vocab, context)
    assert info.architecture == values["general.architecture"]
    assert info.name == values["general.name"]
    assert info.vocab_size == values["tokenizer.ggml.tokens"][0]
    assert info.context_length == values[f"{arch}.context_length"]
    assert info.quantization == "F16" == gguf.LlamaFileType(values["general.file_type"]).name[7:]
    assert info.chat_template is template is ("tokenizer.chat_template" in values)
    assert info.chat_template_text == values.get("tokenizer.chat_template")
    assert info.tensor_count == expected["tensor_count"] == 0  # vocabulary-only files
    assert info.parameters is None and expected["parameters"] == 0
    assert info.file_size == path.stat().st_size
    assert f"{context:,} ctx" in info.summary()


def test_model_with_tensors_reads_as_gguf_reader_reads_it(chat_model: Path) -> None:
    expected = what_gguf_reader_says(chat_model)
    reader = gguf.GGUFReader(str(chat_model))
    clear_cache()
    info = read_model_info(chat_model)
    assert info.tensor_count == expected["tensor_count"] > 0
    assert info.parameters == expected["parameters"] > 100_000
    assert info.vocab_size == expected["values"]["tokenizer.ggml.tokens"][0]
    assert info.chat_template_text == expected["values"]["tokenizer.chat_template"]
    assert {t.tensor_type.name for t in reader.tensors} == {"F32"} and info.quantization == "F32"


def test_quantization_falls_back_to_the_type_holding_most_bytes(tmp_path: Path) -> None:
    """No general.file_type: the tensor type with the most bytes names the quantization."""
    import numpy as np

    path = tmp_path / "mixed.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("big", np.zeros((64, 64), dtype=np.float16))  # 8 KiB of F16
    writer.add_tensor("small", np.zeros(512, dtype=np.float32))  # 2 KiB of F32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = read_model_info(path)
    assert (info.quantization, info.parameters, info.tensor_count) == ("F16", 64 * 64 + 512, 2)


def test_details_of_a_262k_vocabulary_take_little_memory() -> None:
    """The header is read with the vocabulary's 262k tokens and 515k merges skipped: a few
    hundred KB. (gguf.GGUFReader, used before, parsed every string: about 1 GB.)"""
    path = vocab_file(GEMMA4)
    clear_cache()
    tracemalloc.start()
    try:
        info = read_model_info(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.vocab_size == 262_144
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_kv_cache_per_token_from_the_header(tiny_model: Path) -> None:
    """2 (K and V) x KV heads x head size x 2 bytes per layer, also with per-layer KV heads."""
    assert kv_bytes_per_token(tiny_model) == 2 * 2 * 4 * (64 // 4) * 2  # 2 layers, 4 heads
    assert kv_bytes_per_token(vocab_file(LLAMA_BPE)) == 32 * 2 * 8 * 128 * 2  # 128 KiB: Llama 3 8B
    assert kv_bytes_per_token(vocab_file(QWEN2)) == 32 * 2 * 32 * 128 * 2
    gemma = reader_says(GEMMA4)["values"]
    layers, kv_heads = gemma["gemma4.attention.head_count_kv"]
    assert layers == len(kv_heads) == gemma["gemma4.block_count"] == 30  # one per layer
    key, value = gemma["gemma4.attention.key_length"], gemma["gemma4.attention.value_length"]
    assert kv_bytes_per_token(vocab_file(GEMMA4)) == sum(kv_heads) * (key + value) * 2
    assert kv_bytes_per_token(Path("/nonexistent.gguf")) is None


def test_the_same_details_until_the_file_changes(
    tiny_model: Path, chat_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.gguf"
    shutil.copyfile(tiny_model, path)
    first = read_model_info(path)
    assert read_model_info(path) is first and not first.chat_template
    shutil.copyfile(chat_model, path)  # replaced in place: another size and mtime
    changed = read_model_info(path)
    assert changed is not first and changed.chat_template
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF  # the same size: a new mtime tells
    stat = path.stat()
    path.write_bytes(bytes(blob))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert read_model_info(path) is not changed
    moved = tmp_path / "moved.gguf"  # another file (path and inode)
    path.rename(moved)
    assert read_model_info(moved).path == moved.resolve()


def test_truncated_and_garbage_files_are_refused_with_a_reason(
    tiny_model: Path, tmp_path: Path
) -> None:
    gemma = vocab_file(GEMMA4).read_bytes()
    tiny = tiny_model.read_bytes()
    cases = {
        "garbage": (os.urandom(4096), "not a GGUF file \\(bad magic bytes\\)"),
        "magic only": (b"GGUF", "cannot read its GGUF metadata \\(truncated or corrupt"),
        "old version": (b"GGUF" + b"\x00" * 8, "GGUF version 0 is too old"),
        "cut in the vocabulary": (
            gemma[: len(gemma) // 3],
            "cannot read its GGUF metadata \\(truncated or corrupt: its header's array length",
        ),
        "cut in the merges": (
            gemma[: gemma.find(b"tokenizer.ggml.merges") + 6 * 2**20],  # 9 MB of merges
            "cannot read its GGUF metadata \\(truncated or corrupt: the header runs past the end",
        ),
        "cut in the chat template": (gemma[:-100], "its header's string length \\(12,045\\)"),
        "cut in the weights": (tiny[:-1000], "truncated: its tensors need"),
        "huge key length": (
            gemma[:24] + b"\xff" * 64 + gemma[88:],
            "cannot read its GGUF metadata \\(truncated or corrupt",
        ),
    }
    for label, (blob, reason) in cases.items():
        path = tmp_path / f"{label}.gguf"
        path.write_bytes(blob)
        with pytest.raises(ValueError, match=reason) as caught:
            read_model_info(path)
        assert str(path.resolve()) in str(caught.value), label
        assert kv_bytes_per_token(path) is None, label
