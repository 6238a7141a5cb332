"""A GGUF file's header in one pass: its metadata values, tensor table and extents vs its size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from worker.files import open_regular
from worker.modelfile.quants import block_of
from worker.modelfile.reader import GgufArray, GgufError, HeaderReader, MetaValue

__all__ = ["GgufError", "GgufLayout", "TensorEntry", "clear_cache", "scan_gguf"]

_UINT32 = 4
_MAX_DIMS = 8  # GGML_MAX_DIMS is 4; anything above a few is corrupt
_DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table, without its name."""

    offset: int  # within the data section
    n_bytes: int  # 0 for a type newer than the gguf package
    n_elements: int
    type: int  # a gguf.GGMLQuantizationType value


@dataclass(frozen=True)
class GgufLayout:
    """What the scan learned: the model's metadata and tensors, and that its size is right.

    `metadata` holds every key of the header: scalars and strings as read, arrays as a
    GgufArray (its length, and the items only of a short numeric one; a vocabulary's strings
    are never read). Treat it as read-only: the layout is cached and shared.
    """

    version: int
    architecture: str | None
    tensor_count: int
    data_end: int  # byte offset where the last tensor's data ends
    file_size: int
    metadata: Mapping[str, MetaValue] = field(default_factory=dict, compare=False)
    parameters: int = 0  # elements in all tensors
    bytes_by_type: Mapping[int, int] = field(default_factory=dict, compare=False)

    def array_length(self, key: str) -> int | None:
        value = self.metadata.get(key)
        return value.count if isinstance(value, GgufArray) else None


def scan_gguf(path: Path) -> GgufLayout:
    """Read the header, metadata and tensor table; GgufError if truncated or corrupt.

    Reads only the header region (metadata and tensor table, a few MB even for large
    models), never the tensor data, and skips the vocabulary's strings without reading
    them: about 0.5 ms for a small vocabulary and 20-40 ms for a 128k-262k-token one, in
    under 5 MB of memory (gguf.GGUFReader takes 10-40 s and 0.5-1.3 GB for the same files;
    see bench/modelinfo.py). The result is cached per file version (path, size, mtime,
    inode).
    llama.cpp checks the same extents when it loads, but finding a truncated download here
    turns a failed job into an immediate refusal with a clear reason.
    """
    info = path.stat()
    return _scan(path, info.st_size, info.st_mtime_ns, info.st_ino)


def clear_cache() -> None:
    """Forget every file's scan (tests and benchmarks read files cold)."""
    _scan.cache_clear()


@lru_cache(maxsize=64)
def _scan(path: Path, size: int, _mtime_ns: int, _inode: int) -> GgufLayout:
    with open_regular(path) as raw:
        reader = HeaderReader(raw, size)
        if reader.read(4) != b"GGUF":
            raise GgufError("not a GGUF file (bad magic bytes)")
        version = reader.u32()
        if version < 2:
            raise GgufError(f"GGUF version {version} is too old (llama.cpp reads version 2 and 3)")
        if version > 3:
            raise GgufError(f"GGUF version {version} is newer than this app knows")
        tensor_count, kv_count = reader.u64(), reader.u64()
        reader.bound(tensor_count, 24, "tensor count")
        reader.bound(kv_count, 12, "metadata count")
        metadata: dict[str, MetaValue] = {}
        alignment = _DEFAULT_ALIGNMENT
        for _ in range(kv_count):
            key = reader.string()
            kind = reader.u32()
            metadata[key] = value = reader.value(kind)
            if key == "general.alignment" and kind == _UINT32 and isinstance(value, int):
                alignment = _alignment(value)  # llama.cpp reads it as a u32 only
        tensors = [_tensor_entry(reader) for _ in range(tensor_count)]
        header_end = reader.position
    data_start = -(-header_end // alignment) * alignment
    data_end = data_start + max((t.offset + t.n_bytes for t in tensors), default=0)
    if not tensors:
        data_end = header_end  # a vocabulary-only file: no data section, no padding needed
    if data_end > size:
        raise GgufError(
            f"truncated: its tensors need {data_end:,} bytes but the file has {size:,} "
            "(an incomplete download or copy?)"
        )
    bytes_by_type: dict[int, int] = {}
    for tensor in tensors:
        bytes_by_type[tensor.type] = bytes_by_type.get(tensor.type, 0) + tensor.n_bytes
    architecture = metadata.get("general.architecture")
    return GgufLayout(
        version=version,
        architecture=architecture if isinstance(architecture, str) else None,
        tensor_count=tensor_count,
        data_end=data_end,
        file_size=size,
        metadata=metadata,
        parameters=sum(t.n_elements for t in tensors),
        bytes_by_type=bytes_by_type,
    )


def _alignment(alignment: int) -> int:
    if alignment == 0 or alignment & (alignment - 1):
        raise GgufError(f"corrupt GGUF header: alignment {alignment}")
    return alignment


def _tensor_entry(reader: HeaderReader) -> TensorEntry:
    """The next row of the tensor table; GgufError if its shape cannot be right."""
    name = reader.string()
    n_dims = reader.u32()
    if not 0 < n_dims <= _MAX_DIMS:
        raise GgufError(f"corrupt GGUF header: tensor {name!r} has {n_dims} dimensions")
    elements = 1
    for _ in range(n_dims):
        elements *= reader.u64()
    kind = reader.u32()
    offset = reader.u64()
    if (shape := block_of(kind)) is None:
        return TensorEntry(offset, 0, elements, kind)  # newer than the gguf package
    block, block_bytes = shape
    if elements % block:
        raise GgufError(f"corrupt GGUF header: tensor {name!r} has a partial block")
    return TensorEntry(offset, elements // block * block_bytes, elements, kind)
