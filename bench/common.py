"""Shared benchmark plumbing: a temporary queue, models, percentiles, JSON output."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp

REPO = Path(__file__).resolve().parents[1]
STORIES = REPO.parent / "shared" / "models" / "stories260K.gguf"


T = TypeVar("T")


def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a new Python process; for baselines that decode on the calling thread.

    llama.cpp's CPU backend runs each decode as an OpenMP parallel region, and OpenMP
    keeps a team of threads for every thread that has used it. Once the benchmark's main
    thread has decoded with 2 threads, a batch engine's loop thread in the same process
    decoded 3x slower on the 2-core machine (2800 -> 870 tokens/s on stories260K), so
    each baseline gets a process of its own and the engine measured here runs alone.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def stories_model() -> Path:
    model = Path(os.environ.get("PROMPTSPOOL_BENCH_MODEL", STORIES))
    if not model.is_file():
        sys.exit(f"bench: model {model} not found (set PROMPTSPOOL_BENCH_MODEL)")
    return model


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3) if values else float("nan"),
        "mean": round(statistics.fmean(values), 3) if values else float("nan"),
        "n": len(values),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "llama_cpp_python": llama_cpp.__version__,
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
    }


def emit(name: str, data: dict[str, Any]) -> dict[str, Any]:
    record = {"bench": name, **data}
    print(json.dumps(record), flush=True)
    return record
