"""How many jobs a worker runs at once: the setting, or a guess from the model and free VRAM."""

from __future__ import annotations

import logging
from pathlib import Path

from worker.engine.hardware import free_gpu_memory, gpu_offload_supported
from worker.modelfile.info import kv_bytes_per_token

log = logging.getLogger(__name__)

MAX_AUTO_JOBS = 32
FALLBACK_GPU_JOBS = 8  # a GPU whose free memory or model we cannot read
RESERVE_BYTES = 1 << 30  # compute buffers, CUDA context and other processes' headroom


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
