"""Reliability figures: the append-only fsync policy's cost on submits, and endurance."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, summary
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import temp_queue, wait_until
from worker.testing.tinymodel import write_tiny_llama


def fsync_policy(model: Path, count: int = 300, rounds: int = 3) -> dict[str, Any]:
    """Submit latency (one job per call) with `appendfsync everysec` (shipped) vs `always`.

    The policies alternate on one server (CONFIG SET) so both see the same disk and load.
    """
    spec = JobSpec(prompt="Once upon a time", model=str(model), max_tokens=4)
    samples: dict[str, list[float]] = {"everysec": [], "always": []}
    with temp_queue(workers=0) as q:
        q.client.submit([spec])  # connect and warm the producer
        for _ in range(rounds):
            for policy, values in samples.items():
                q.redis.config_set("appendfsync", policy)
                for _ in range(count):
                    started = time.perf_counter()
                    q.client.submit([spec])
                    values.append((time.perf_counter() - started) * 1000)
        q.redis.config_set("appendfsync", "everysec")
    result = {policy: summary(values) for policy, values in samples.items()}
    extra = result["always"]["p50"] - result["everysec"]["p50"]
    return emit("fsync_policy_submit_ms", {**result, "always_costs_p50_ms": round(extra, 3)})


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def endurance(
    jobs: int = 2000, warmup: int = 200, batch: int = 100, retention_days: float | None = None
) -> dict[str, Any]:
    """`jobs` tiny jobs through one worker: all must succeed; memory and keys are sampled.

    The worker's RSS is taken after `warmup` jobs and at the end; the server's key count
    and used memory before, after the warm-up and at the end. With `retention_days`, the
    reaper prunes finished jobs as it goes and the key count must come back to the start.
    """
    env = {"PROMPTSPOOL_HEARTBEAT_TTL": "2"}
    if retention_days is not None:
        env["PROMPTSPOOL_RETENTION_DAYS"] = repr(retention_days)
    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_llama(Path(folder) / "tiny.gguf")
        with temp_queue(env=env) as q:
            pid = q.workers[0].process.pid
            keys_start = int(q.redis.dbsize())
            memory_start = int(q.redis.info("memory")["used_memory"])
            done: list[str] = []
            rss_warm = keys_warm = memory_warm = keys_max = 0
            started = time.perf_counter()
            rss_samples = []
            for first in range(0, jobs, batch):
                specs = [
                    JobSpec(prompt=f"Once upon a time {n}", model=str(model), max_tokens=8, seed=n)
                    for n in range(first, min(jobs, first + batch))
                ]
                ids = q.client.submit(specs)
                finished = [q.client.wait(job_id, timeout=300) for job_id in ids]
                done += [job.id for job in finished if job.state is JobState.succeeded]
                if first + batch == warmup:
                    rss_warm = _rss(pid)
                    keys_warm = int(q.redis.dbsize())
                    memory_warm = int(q.redis.info("memory")["used_memory"])
                if first + batch > warmup:
                    rss_samples.append(_rss(pid))
                keys_max = max(keys_max, int(q.redis.dbsize()))
            elapsed = time.perf_counter() - started
            rss_end = _rss(pid)
            keys_end = int(q.redis.dbsize())
            memory_end = int(q.redis.info("memory")["used_memory"])
            pruned_to = None
            if retention_days is not None:  # the reaper prunes on its own schedule
                wait_until(lambda: not q.redis.keys("ps:job:*"), timeout=120)
                pruned_to = int(q.redis.dbsize())
    finished_jobs = len(done) if retention_days is None else jobs
    return emit("endurance", {
        "jobs": jobs,
        "succeeded": len(done),
        "seconds": round(elapsed, 1),
        "jobs_per_s": round(jobs / elapsed, 1),
        "worker_rss_after_warmup_mb": round(rss_warm / 2**20, 1),
        "worker_rss_end_mb": round(rss_end / 2**20, 1),
        "worker_rss_max_mb": round(max(rss_samples) / 2**20, 1),
        "worker_rss_growth_pct": round((rss_end - rss_warm) / rss_warm * 100, 2),
        "target_growth_pct": 10,
        "retention_days": retention_days,
        "server_keys": {"start": keys_start, "after_warmup": keys_warm, "max": keys_max,
                        "end": keys_end, "after_pruning": pruned_to},
        "server_keys_per_finished_job": round((keys_end - keys_start) / finished_jobs, 2),
        "server_used_memory_mb": {"start": round(memory_start / 2**20, 2),
                                  "after_warmup": round(memory_warm / 2**20, 2),
                                  "end": round(memory_end / 2**20, 2)},
    })  # fmt: skip
