"""Whether a model fits: its weights and KV cache against the RAM and VRAM free now."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

FITS_GPU, CPU_ONLY, TOO_LARGE = "fits on the GPU", "CPU only", "too large"
# Besides weights and KV cache: llama.cpp's compute buffers and the runtime, roughly.
OVERHEAD = 0.10
OVERHEAD_MIN = 256 * 1024 * 1024


@dataclass(frozen=True)
class Room:
    """Memory free now, in bytes (vram None: no GPU that can be asked)."""

    ram: int
    vram: int | None

    @classmethod
    def now(cls) -> Room:
        from worker.engine.hardware import gpu_memory

        gpus = gpu_memory() or []
        vram = sum(gpu.total - gpu.used for gpu in gpus) if gpus else None
        return cls(int(psutil.virtual_memory().available), vram)


def estimate(size: int, kv_per_token: int | None, n_ctx: int) -> int:
    """Bytes to run a model of `size` bytes with `n_ctx` tokens of context (one job)."""
    needs = size + (kv_per_token or 0) * n_ctx
    return needs + max(OVERHEAD_MIN, int(needs * OVERHEAD))


def fit_of(needs: int, room: Room) -> str:
    if room.vram is not None and needs <= room.vram:
        return FITS_GPU
    return CPU_ONLY if needs <= room.ram else TOO_LARGE
