"""The desktop's worst Qt event-loop stall while four jobs stream into the window.

`python -m bench.loop_stall [--jobs N] [--tokens N]`: a real queue with four workers, the app
(attached to it, offscreen unless a display is set) with N finished jobs already in its
table, and four jobs streaming, one of them shown in the detail pane. A 10 ms timer measures
the gap between its ticks; a stall is how much later than 10 ms a tick came. Prints JSON;
`max_gui_busy_ms` is the most CPU time the GUI thread spent between two ticks (what our
code costs, apart from waiting for a CPU on a loaded machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync

from bench.stallmeter import StallMeter
from desktop.app import make_application
from desktop.controller import Controller
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec, Priority
from worker.queue.ledger import Ledger
from worker.testing.harness import Queue, temp_queue
from worker.testing.tinymodel import write_tiny_llama

TICK_MS = 10
TARGET_MS = 50


def finished_jobs(queue: Queue, model: Path, count: int) -> None:
    """`count` jobs recorded as succeeded straight in the ledger (no worker time spent)."""
    ledger = Ledger(queue.redis)
    spec = JobSpec(model=str(model), prompt="An earlier prompt", max_tokens=16)
    for start in range(0, count, 500):
        ids = ledger.create([spec] * min(500, count - start))
        for job_id in ids:
            ledger.claim(job_id, 1, "bench")
            ledger.mark_running(job_id, 1, 4)
            ledger.finish(job_id, 1, JobState.succeeded, completion_tokens=16)


async def measure(queue: Queue, model: Path, tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    controller = Controller(queue.settings, address=queue.address)
    ready = asyncio.Event()
    controller.ready.connect(ready.set)
    await controller.start()
    await ready.wait()
    load_s = time.perf_counter() - started
    specs = [
        JobSpec(model=str(model), prompt=f"Story {n}", max_tokens=tokens, priority=Priority.high)
        for n in range(4)
    ]
    ids = queue.client.submit(specs)
    meter = StallMeter(TICK_MS)
    meter.start()
    while controller.jobs.row_of(ids[0]) is None:
        await asyncio.sleep(0.05)
    controller.window.select_job(ids[0])

    def states() -> list[JobState | None]:
        return [(row.state if (row := controller.jobs.job(i)) else None) for i in ids]

    while not all(s is JobState.running for s in states()):  # all four streaming at once
        await asyncio.sleep(0.05)
    meter.clear()
    streaming_from = time.perf_counter()
    while not all(s is not None and s.finished for s in states()):
        await asyncio.sleep(0.1)
    streamed_s = time.perf_counter() - streaming_from
    meter.stop()
    shown = len(controller.window.detail.output_text())
    await controller.shutdown()
    stalls = sorted(meter.stalls)
    return {
        "bench": "loop_stall",
        "max_stall_ms": round(stalls[-1], 1),
        "p99_stall_ms": round(stalls[int(len(stalls) * 0.99) - 1], 1),
        "median_stall_ms": round(statistics.median(stalls), 2),
        "max_gui_busy_ms": round(max(meter.busy), 1),
        "target_ms": TARGET_MS,
        "ticks": len(stalls),
        "streaming_s": round(streamed_s, 1),
        "jobs_streaming": 4,
        "tokens_per_job": tokens,
        "table_rows": controller.jobs.rowCount(),
        "startup_load_s": round(load_s, 2),
        "detail_chars": shown,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "qpa": os.environ.get("QT_QPA_PLATFORM", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_stall")
    parser.add_argument("--jobs", type=int, default=10_000, help="finished jobs in the table")
    parser.add_argument("--tokens", type=int, default=3000, help="tokens each job generates")
    args = parser.parse_args()
    with temp_queue(workers=0, env={"PROMPTSPOOL_N_CTX": "4096"}, prefix="ps-b-") as queue:
        os.environ["PROMPTSPOOL_HOME"] = str(queue.home)
        app = make_application()
        model = write_tiny_llama(queue.home / "slow.gguf", hidden=256, layers=4, heads=4, ffn=512)
        for _ in range(4):
            queue.start_worker()
        finished_jobs(queue, model, args.jobs)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            result = loop.run_until_complete(measure(queue, model, args.tokens))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
