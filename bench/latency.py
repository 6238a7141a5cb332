"""Submit latency, token-to-reader latency, throughput of tiny jobs, and serve cold start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, summary
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import temp_queue


def submit_latency(model: Path, count: int = 500) -> dict[str, Any]:
    """One job per submit() call, as the CLI and the app do; no worker drains meanwhile."""
    with temp_queue(workers=0) as q:
        spec = JobSpec(prompt="Once upon a time", model=str(model), max_tokens=4)
        q.client.submit([spec])  # connect and warm the producer
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            q.client.submit([spec])
            samples.append((time.perf_counter() - started) * 1000)
    return emit("submit_latency_ms", {**summary(samples), "target_p99_ms": 10})


def bulk_submit(model: Path, jobs: int = 100_000) -> dict[str, Any]:
    """`promptspool submit` of one JSONL file of `jobs` prompts: seconds, and the server's
    memory per queued job (nothing runs them meanwhile)."""
    with temp_queue(workers=0) as q, tempfile.TemporaryDirectory(prefix="psb-") as folder:
        path = Path(folder) / "prompts.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for n in range(jobs):
                out.write(
                    f'{{"prompt": "Summarise document {n} in one line.", "max_tokens": 64}}\n'
                )
        before = int(q.redis.info("memory")["used_memory"])
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "worker", "submit", str(path), "--model", str(model)],
            env=q.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        queued = len(done.stdout.split())
        grown = int(q.redis.info("memory")["used_memory"]) - before
    return emit(
        "bulk_submit",
        {"jobs": queued, "seconds": round(seconds, 2), "jobs_per_s": round(queued / seconds),
         "server_bytes_per_queued_job": round(grown / queued), "target_seconds": 30},
    )  # fmt: skip


def token_to_reader(model: Path, max_tokens: int = 1500) -> dict[str, Any]:
    """From the moment the worker produced a token to the moment a reader has it."""
    latencies: list[float] = []
    with temp_queue() as q:
        spec = JobSpec(prompt="Once upon a time", model=str(model), max_tokens=max_tokens, seed=9)
        [warm] = q.client.submit([spec.model_copy(update={"max_tokens": 2})])
        q.client.wait(warm, timeout=120)
        for seed in range(1, 6):
            [job_id] = q.client.submit([spec.model_copy(update={"seed": seed})])
            for event in q.client.events(job_id):
                received = time.time()
                if event.type == "tokens":
                    latencies.append((received - float(event.data["t0"])) * 1000)
                if event.state is not None and event.state.finished:
                    break
    return emit("token_to_reader_ms", {**summary(latencies), "target_p95_ms": 50})


def tiny_job_throughput(model: Path, jobs: int = 200, tokens: int = 16) -> dict[str, Any]:
    with temp_queue() as q:
        [warm] = q.client.submit([JobSpec(prompt="Once", model=str(model), max_tokens=2)])
        q.client.wait(warm, timeout=120)
        specs = [
            JobSpec(prompt=f"Once upon a time {i}", model=str(model), max_tokens=tokens, seed=i)
            for i in range(jobs)
        ]
        started = time.time()
        ids = q.client.submit(specs)
        finished = [q.client.wait(job_id, timeout=600) for job_id in ids]
        ended = max(job.finished_at or 0 for job in finished)
    ok = sum(job.state is JobState.succeeded for job in finished)
    return emit("tiny_job_throughput", {
        "jobs": jobs, "tokens_each": tokens, "succeeded": ok,
        "seconds": round(ended - started, 3), "jobs_per_s": round(jobs / (ended - started), 1),
        "target_jobs_per_s": 50,
    })  # fmt: skip


def serve_cold_start(runs: int = 3) -> dict[str, Any]:
    """`promptspool serve` in a fresh home until it prints that the queue is ready."""
    samples = []
    for _ in range(runs):
        home = tempfile.mkdtemp(prefix="psc-", dir="/tmp")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
        env["PROMPTSPOOL_HOME"] = home
        started = time.perf_counter()
        command = [sys.executable, "-m", "worker", "serve"]
        serve = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert serve.stdout is not None
            for line in serve.stdout:
                if "queue ready" in line:
                    samples.append(time.perf_counter() - started)
                    break
        finally:
            serve.terminate()
            serve.wait(60)
            if serve.stdout is not None:
                serve.stdout.close()
            shutil.rmtree(home, ignore_errors=True)
    return emit("serve_cold_start_s", {**summary(samples), "target_s": 3})
