"""A model's details (read_model_info) vs gguf.GGUFReader on 128k-262k-token vocabularies.

`python -m bench.modelinfo [--repeats N]`, or `python -m bench modelinfo`. Each file is read
in fresh processes, cold (caches cleared), by the header scan and by GGUFReader (the
baseline, what read_model_info used before). Wall and CPU time are both given: on a busy
machine the wall time includes waiting for a CPU. The memory figures are the peak of
Python allocations (tracemalloc, a separate run) and the growth of the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from typing import Any

from bench.common import REPO, emit, in_fresh_process, summary

VOCABS = REPO.parent / "shared" / "models" / "vocab"
FILES = {
    "128k": "ggml-vocab-llama-bpe.gguf",
    "152k": "ggml-vocab-qwen2.gguf",
    "262k": "ggml-vocab-gemma-4.gguf",
}
TARGET_MS, TARGET_MIB = 100, 50


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def header_scan(path: str, repeats: int) -> dict[str, Any]:
    """read_model_info, cold `repeats` times, then cached, then once under tracemalloc."""
    from worker.modelfile.info import clear_cache, read_model_info

    def cold() -> Any:
        clear_cache()
        return read_model_info(path)

    cold()  # imports gguf's constants; the page cache holds the file for both readers
    rss_before = _peak_rss_mib()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        info = cold()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    rss_growth = _peak_rss_mib() - rss_before
    wall = time.perf_counter()
    assert read_model_info(path) is info
    cached_us = (time.perf_counter() - wall) * 1e6
    tracemalloc.start()
    cold()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "ms": summary(walls),
        "cpu_ms": summary(cpus),
        "cached_us": round(cached_us, 1),
        "tracemalloc_peak_mib": round(peak, 2),
        "rss_growth_mib": round(rss_growth, 1),
        "vocab_size": info.vocab_size,
        "summary": info.summary(),
    }


def gguf_reader(path: str) -> dict[str, Any]:
    """The baseline: gguf.GGUFReader parses every field, the whole tokenizer included."""
    import gguf

    rss_before = _peak_rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    reader = gguf.GGUFReader(path)
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    return {
        "s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "rss_growth_mib": round(_peak_rss_mib() - rss_before, 1),
        "vocab_size": vocab,
    }


def run(repeats: int = 5) -> list[dict[str, Any]]:
    records = []
    for label, name in FILES.items():
        path = VOCABS / name
        if not path.is_file():
            records.append(emit("modelinfo", {"vocab": label, "skipped": f"{path} not found"}))
            continue
        ours = in_fresh_process(header_scan, str(path), repeats)
        baseline = in_fresh_process(gguf_reader, str(path))
        assert ours["vocab_size"] == baseline["vocab_size"]
        record = {
            "vocab": label,
            "file": name,
            "file_mib": round(path.stat().st_size / 2**20, 1),
            "read_model_info": ours,
            "gguf_reader": baseline,
            "speedup_p50": round(baseline["s"] * 1000 / ours["ms"]["p50"]),
            "target": f"< {TARGET_MS} ms and < {TARGET_MIB} MiB",
            "met": ours["ms"]["p50"] < TARGET_MS and ours["tracemalloc_peak_mib"] < TARGET_MIB,
        }
        records.append(emit("modelinfo", record))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.modelinfo")
    parser.add_argument("--repeats", type=int, default=5, help="cold reads per file")
    run(parser.parse_args().repeats)


if __name__ == "__main__":
    main()
