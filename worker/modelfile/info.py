"""A GGUF model's metadata for people: architecture, size, quantization, context, chat template."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.modelfile.check import check_model_file


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


def _value(fields: dict[str, Any], key: str) -> Any:
    field = fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except (ValueError, IndexError, TypeError):
        return None


def _quantization(fields: dict[str, Any], tensors: list[Any]) -> str | None:
    import gguf

    file_type = _value(fields, "general.file_type")
    if isinstance(file_type, int):
        try:
            name = gguf.LlamaFileType(file_type).name
        except ValueError:
            name = None
        if name:
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    weights: Counter[str] = Counter()
    for tensor in tensors:  # no file type recorded: the type holding most of the bytes
        weights[tensor.tensor_type.name] += int(tensor.n_bytes)
    return weights.most_common(1)[0][0] if weights else None


def read_model_info(path: str | Path) -> ModelInfo:
    """The file's metadata; ValueError (naming the file and the reason) if it is no usable GGUF."""
    model = check_model_file(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(model))
    except (ValueError, OSError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"model {str(model)!r}: cannot read its GGUF metadata ({exc})") from exc
    fields: dict[str, Any] = dict(reader.fields)
    arch = _value(fields, "general.architecture")
    context = _value(fields, f"{arch}.context_length") if arch else None
    tensors = list(reader.tensors)
    return ModelInfo(
        path=model,
        file_size=model.stat().st_size,
        architecture=str(arch) if arch else None,
        name=str(_value(fields, "general.name") or "") or None,
        parameters=sum(int(t.n_elements) for t in tensors) or None,
        quantization=_quantization(fields, tensors),
        context_length=int(context) if isinstance(context, int) else None,
        chat_template="tokenizer.chat_template" in fields,
    )


def kv_bytes_per_token(model: Path) -> int | None:
    """K and V bytes per token at f16, from the GGUF header (None if it cannot be read)."""
    try:
        from gguf import GGUFReader

        fields: dict[str, Any] = dict(GGUFReader(str(model)).fields)

        def value(key: str) -> Any:
            field = fields.get(key)
            return field.contents() if field is not None else None

        arch = value("general.architecture")
        layers = int(value(f"{arch}.block_count"))
        embd = int(value(f"{arch}.embedding_length"))
        heads = int(value(f"{arch}.attention.head_count"))
        kv_heads = value(f"{arch}.attention.head_count_kv")
        kv_heads = int(kv_heads) if kv_heads is not None else heads
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None
    return layers * 2 * kv_heads * (embd // heads) * 2
