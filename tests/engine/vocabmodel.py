"""Tiny random-weight Llama GGUFs that carry a real model's tokenizer (from a vocab-only GGUF)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import gguf
import numpy as np

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}  # fmt: skip


def _read_tokenizer(path: Path) -> dict[str, tuple[gguf.GGUFValueType, object, object]]:
    """The tokenizer.* keys of a GGUF file: (type, value, array item type). gguf's own reader
    takes half a minute on a 262k-token vocabulary; this one reads the keys alone, fast."""
    data = path.read_bytes()
    pos = 24  # magic, version, tensor count
    (n_kv,) = struct.unpack_from("<Q", data, 16)

    def string() -> str:
        nonlocal pos
        (size,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + size
        return data[pos - size : pos].decode()

    def value(kind: int) -> object:
        nonlocal pos
        if kind == gguf.GGUFValueType.STRING:
            return string()
        fmt = _SCALARS[kind]
        pos += struct.calcsize(fmt)
        return struct.unpack_from(fmt, data, pos - struct.calcsize(fmt))[0]

    found: dict[str, tuple[gguf.GGUFValueType, object, object]] = {}
    for _ in range(n_kv):
        key = string()
        (kind,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if kind == gguf.GGUFValueType.ARRAY:
            item, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if item == gguf.GGUFValueType.STRING:
                items: object = [string() for _ in range(count)]
            else:
                dtype = np.dtype(_SCALARS[item])
                items = np.frombuffer(data, dtype, count, pos).tolist()
                pos += dtype.itemsize * count
            found[key] = (gguf.GGUFValueType.ARRAY, items, gguf.GGUFValueType(item))
        else:
            found[key] = (gguf.GGUFValueType(kind), value(kind), None)
    return {k: v for k, v in found.items() if k.startswith("tokenizer.")}


def write_vocab_model(
    vocab: Path,
    path: Path,
    *,
    favour: Iterable[int] = (),
    hidden: int = 32,
    chat_template: str | None = None,
    random_output: bool = False,
) -> Path:
    """A one-layer Llama with `vocab`'s tokenizer (and chat template, unless one is given).

    Only the tokens in `favour` have output rows, in pairs of opposite sign, so each step's
    likeliest token is always one of them (all other logits are 0). `random_output`: every
    token has a random row instead, so each step's logits differ all over the vocabulary.
    """
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("promptspool-vocab-tiny")
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(hidden * 2)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(hidden // 4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokenizer = _read_tokenizer(vocab)
    if chat_template is not None:
        tokenizer["tokenizer.chat_template"] = (gguf.GGUFValueType.STRING, chat_template, None)
    for key, (kind, value, item) in tokenizer.items():
        writer.add_key_value(key, value, kind, item)  # type: ignore[arg-type]
    n_vocab = len(tokenizer["tokenizer.ggml.tokens"][1])  # type: ignore[arg-type]
    rng = np.random.default_rng(0)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.2).astype(np.float16)

    ones = np.ones(hidden, dtype=np.float32)
    writer.add_tensor("token_embd.weight", mat(n_vocab, hidden))
    writer.add_tensor("blk.0.attn_norm.weight", ones)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", mat(hidden, hidden))
    writer.add_tensor("blk.0.ffn_norm.weight", ones)
    writer.add_tensor("blk.0.ffn_gate.weight", mat(hidden * 2, hidden))
    writer.add_tensor("blk.0.ffn_up.weight", mat(hidden * 2, hidden))
    writer.add_tensor("blk.0.ffn_down.weight", mat(hidden, hidden * 2))
    writer.add_tensor("output_norm.weight", ones)
    output = mat(n_vocab, hidden) * 4 if random_output else np.zeros((n_vocab, hidden), np.float16)
    chosen = list(favour)
    for i, token in enumerate(chosen):
        row = rng.standard_normal(hidden) * 4.0
        output[token] = row if i % 2 == 0 or i == 0 else -output[chosen[i - 1]]
    writer.add_tensor("output.weight", output)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return path
