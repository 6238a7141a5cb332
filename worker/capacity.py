"""How many jobs a worker runs at once: the setting, or a guess from the model and free VRAM."""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path
from typing import Any

import llama_cpp

from worker.engine import gpu_offload_supported

log = logging.getLogger(__name__)

MAX_AUTO_JOBS = 32
FALLBACK_GPU_JOBS = 8  # a GPU whose free memory or model we cannot read
RESERVE_BYTES = 1 << 30  # compute buffers, CUDA context and other processes' headroom
_GPU_TYPES = (1, 2)  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU


def parallel_jobs(configured: int | None, model: Path | None, n_ctx: int, n_gpu_layers: int) -> int:
    """The configured number, else 1 on the CPU, else as many `n_ctx` slots as fit in VRAM."""
    if configured is not None:
        return configured
    if not gpu_offload_supported() or n_gpu_layers == 0:
        return 1  # on the CPU, one job already uses every core
    free = free_gpu_memory()
    model = model.expanduser() if model is not None else None
    per_token = kv_bytes_per_token(model) if model is not None else None
    if free is None or per_token is None or model is None:
        log.info("parallel jobs: %s (no free-VRAM or model figures)", FALLBACK_GPU_JOBS)
        return FALLBACK_GPU_JOBS
    left = free - model.stat().st_size - RESERVE_BYTES
    jobs = max(1, min(MAX_AUTO_JOBS, left // (per_token * n_ctx)))
    log.info(
        "parallel jobs: %s (%.1f GiB free, %.0f KiB of KV cache per token, n_ctx %s)",
        jobs, free / 2**30, per_token / 1024, n_ctx,
    )  # fmt: skip
    return int(jobs)


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


def free_gpu_memory() -> int | None:
    """Free bytes summed over llama.cpp's GPU devices (None if it cannot tell)."""
    try:
        base, registry = _ggml()
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        found = 0
        for i in range(registry.ggml_backend_dev_count()):
            device = registry.ggml_backend_dev_get(i)
            if base.ggml_backend_dev_type(device) in _GPU_TYPES:
                base.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
                found += free.value
    except (OSError, AttributeError, StopIteration):
        return None
    return found or None


@functools.cache
def _ggml() -> tuple[Any, Any]:
    """libggml-base (devices) and libggml (their registry), as llama-cpp-python loaded them."""
    llama_cpp.llama_backend_init()
    libdir = Path(llama_cpp.__file__).parent / "lib"
    base = ctypes.CDLL(str(next(libdir.glob("libggml-base.*"))))
    registry = ctypes.CDLL(str(next(libdir.glob("libggml.*"))))
    registry.ggml_backend_dev_count.restype = ctypes.c_size_t
    registry.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    registry.ggml_backend_dev_get.restype = ctypes.c_void_p
    base.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    base.ggml_backend_dev_type.restype = ctypes.c_int
    size_p = ctypes.POINTER(ctypes.c_size_t)
    base.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_p, size_p]
    return base, registry
