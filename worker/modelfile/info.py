"""A GGUF model's metadata for people: architecture, size, quantization, context, chat template."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from worker.modelfile.check import check_model_file
from worker.modelfile.layout import GgufError, GgufLayout, scan_gguf
from worker.modelfile.layout import clear_cache as clear_layout_cache
from worker.modelfile.reader import GgufArray, MetaValue

CHAT_TEMPLATE = "tokenizer.chat_template"
VOCABULARY = "tokenizer.ggml.tokens"


@dataclass(frozen=True)
class ModelInfo:
    """What the model picker shows about one GGUF file."""

    path: Path
    file_size: int
    architecture: str | None = None
    name: str | None = None
    parameters: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    chat_template: bool = False
    vocab_size: int | None = None  # the length of the token list (its strings are never read)
    tensor_count: int = 0
    chat_template_text: str | None = None  # None also for a template over reader.LONG_STRING

    def summary(self) -> str:
        """One line, e.g. 'llama · 7.2B params · Q4_K_M · 4,096 ctx · chat template · 4.1 GB'."""
        parts = [self.architecture or "unknown architecture"]
        if self.parameters:
            parts.append(f"{human_count(self.parameters)} params")
        if self.quantization:
            parts.append(self.quantization)
        if self.context_length:
            parts.append(f"{self.context_length:,} ctx")
        parts.append("chat template" if self.chat_template else "no chat template")
        parts.append(human_bytes(self.file_size))
        return " · ".join(parts)


def human_count(value: int) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}".replace(".0", "")
    return str(value)


def human_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def read_model_info(path: str | Path) -> ModelInfo:
    """The file's metadata; ValueError (naming the file and the reason) if it is no usable GGUF.

    Read from the header alone by worker.modelfile.layout (the vocabulary is counted, never
    read: tens of milliseconds and a few hundred KB even for a 262k-token vocabulary), and
    cached per file version (path, size, mtime, inode): the same object while the file is
    unchanged.
    """
    model = check_model_file(path)
    try:
        info = model.stat()
        return _read(model, info.st_size, info.st_mtime_ns, info.st_ino)
    except GgufError as exc:
        raise ValueError(f"model {str(model)!r}: cannot read its GGUF metadata ({exc})") from exc
    except OSError as exc:
        raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc


def clear_cache() -> None:
    """Forget every file's details and scan (tests and benchmarks read files cold)."""
    _read.cache_clear()
    clear_layout_cache()


@lru_cache(maxsize=64)
def _read(model: Path, _size: int, _mtime_ns: int, _inode: int) -> ModelInfo:
    layout = scan_gguf(model)
    meta = layout.metadata
    arch = layout.architecture
    template = meta.get(CHAT_TEMPLATE)
    return ModelInfo(
        path=model,
        file_size=layout.file_size,
        architecture=arch,
        name=_text(meta.get("general.name")),
        parameters=layout.parameters or None,
        quantization=quantization(layout),
        context_length=_count(meta.get(f"{arch}.context_length")) if arch else None,
        chat_template=CHAT_TEMPLATE in meta,
        vocab_size=layout.array_length(VOCABULARY),
        tensor_count=layout.tensor_count,
        chat_template_text=template if isinstance(template, str) else None,
    )


def quantization(layout: GgufLayout) -> str | None:
    """The file type's name (e.g. 'Q4_K_M'), else the tensor type holding most of the bytes."""
    from gguf import GGMLQuantizationType, LlamaFileType

    file_type = _count(layout.metadata.get("general.file_type"))
    if file_type is not None:
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass  # a file type newer than the gguf package
    weights = {kind: n for kind, n in layout.bytes_by_type.items() if n}
    if not weights:
        return None
    kind = max(weights, key=lambda k: weights[k])
    try:
        return GGMLQuantizationType(kind).name
    except ValueError:
        return None


def kv_bytes_per_token(model: Path) -> int | None:
    """K and V bytes per token at f16, from the GGUF header (None if it cannot be read).

    Per layer: 2 (K and V) x its KV heads x the head size x 2 bytes. The KV heads may be one
    number or one per layer (Gemma 3n/4); the head size is `attention.key_length` /
    `value_length` where recorded, else the embedding length / the heads.
    """
    try:
        meta = scan_gguf(model).metadata
    except (OSError, GgufError):
        return None
    arch = meta.get("general.architecture")
    layers = _count(meta.get(f"{arch}.block_count"))
    embd = _count(meta.get(f"{arch}.embedding_length"))
    heads = _per_layer(meta.get(f"{arch}.attention.head_count"), layers)
    kv_heads = _per_layer(meta.get(f"{arch}.attention.head_count_kv"), layers) or heads
    if not layers or not embd or not heads or not kv_heads or not max(heads):
        return None
    default = embd // max(heads)
    key = _count(meta.get(f"{arch}.attention.key_length")) or default
    value = _count(meta.get(f"{arch}.attention.value_length")) or default
    return sum(kv_heads) * (key + value) * 2


def _per_layer(value: MetaValue | None, layers: int | None) -> list[int] | None:
    """A count given once for all layers or once per layer, as one per layer."""
    if not layers:
        return None
    if isinstance(value, GgufArray):
        items = value.items
        if items is None or len(items) != layers:
            return None
        counts = [_count(item) for item in items]
        return None if any(c is None for c in counts) else [c for c in counts if c is not None]
    count = _count(value)
    return None if count is None else [count] * layers


def _count(value: MetaValue | None) -> int | None:
    """A non-negative integer value; None for a missing key or a value of another type."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: MetaValue | None) -> str | None:
    return value if isinstance(value, str) and value else None
