"""The desktop's worst Qt event-loop stall while four jobs stream into the window.

`python -m bench.loop_stall [--jobs N] [--tokens N]`: a real queue with four workers, the app
(attached to it, offscreen unless a display is set) with N finished jobs already in its
table, and four jobs streaming, one of them shown in the detail pane. A 10 ms timer measures
the gap between its ticks; a stall is how much later than 10 ms a tick came. Prints JSON;
`max_gui_busy_ms` is the most CPU time the GUI thread spent between two ticks (what our
code costs, apart from waiting for a CPU on a loaded machine).

Meanwhile the window reads a model's details over and over, cold (`--read-model`, by
default the 262k-token Gemma 4 vocabulary file), the way the model picker does: the
command runs read_model_info on a pool thread. `--read-every` is the pause between reads
(default 1 s, a person picking one model after another; 0: back to back, the worst case);
`--read-model ''` turns the reading off.
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

from bench.common import REPO
from bench.stallmeter import StallMeter
from desktop.app import make_application
from desktop.controller import Controller
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec, Priority
from worker.modelfile.info import clear_cache
from worker.queue.ledger import Ledger
from worker.testing.harness import Queue, temp_queue
from worker.testing.tinymodel import write_tiny_llama

TICK_MS = 10
TARGET_MS = 50
VOCAB_262K = REPO.parent / "shared" / "models" / "vocab" / "ggml-vocab-gemma-4.gguf"


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


class DetailsReader:
    """Reads a model's details again and again, cold, as the picker does on a pick: the
    command reads them on the window's pool thread and shows the model line."""

    def __init__(self, controller: Controller, model: Path, every: float) -> None:
        self.controller = controller
        self.model = str(model)
        self.every = every
        self.times_ms: list[float] = []
        self.task: asyncio.Task[None] | None = None
        self.running = False

    def start(self) -> None:
        self.controller.window.choose_model(self.model)  # the picker shows this model's line
        self.running = True
        self.task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while self.running:
            clear_cache()  # each read parses the header again, as on a first launch or pick
            started = time.perf_counter()
            await self.controller.commands.show_model_info(self.model)
            self.times_ms.append((time.perf_counter() - started) * 1000)
            if self.every > 0:
                await asyncio.sleep(self.every)

    async def stop(self) -> dict[str, Any]:
        self.running = False
        if self.task is not None:
            await self.task
        shown = self.controller.window.editor.picker.info.text()
        return {
            "model_read": Path(self.model).name,
            "model_reads": len(self.times_ms),
            "model_read_every_s": self.every,
            "model_read_ms_p50": round(statistics.median(self.times_ms), 1),
            "model_read_ms_max": round(max(self.times_ms), 1),
            "model_line": shown,
        }


async def measure(
    queue: Queue, model: Path, tokens: int, read: Path | None, every: float
) -> dict[str, Any]:
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
    reader = DetailsReader(controller, read, every) if read is not None else None
    if reader is not None:
        reader.start()
    meter.clear()
    streaming_from = time.perf_counter()
    while not all(s is not None and s.finished for s in states()):
        await asyncio.sleep(0.1)
    streamed_s = time.perf_counter() - streaming_from
    meter.stop()
    reading = await reader.stop() if reader is not None else {"model_reads": 0}
    shown = len(controller.window.detail.output_text())
    await controller.shutdown()
    stalls = sorted(meter.stalls)
    return {
        "bench": "loop_stall",
        "max_stall_ms": round(stalls[-1], 1),
        "p99_stall_ms": round(stalls[int(len(stalls) * 0.99) - 1], 1),
        "median_stall_ms": round(statistics.median(stalls), 2),
        "stalls_over_target": sum(1 for stall in stalls if stall > TARGET_MS),
        "max_gui_busy_ms": round(max(meter.busy), 1),
        "target_ms": TARGET_MS,
        "ticks": len(stalls),
        "streaming_s": round(streamed_s, 1),
        "jobs_streaming": 4,
        "tokens_per_job": tokens,
        "table_rows": controller.jobs.rowCount(),
        "startup_load_s": round(load_s, 2),
        "detail_chars": shown,
        **reading,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "qpa": os.environ.get("QT_QPA_PLATFORM", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_stall")
    parser.add_argument("--jobs", type=int, default=10_000, help="finished jobs in the table")
    parser.add_argument("--tokens", type=int, default=3000, help="tokens each job generates")
    parser.add_argument(
        "--read-model",
        default=str(VOCAB_262K),
        help="a GGUF whose details the window reads meanwhile, over and over ('' for none)",
    )
    parser.add_argument(
        "--read-every", type=float, default=1.0, help="seconds between reads (0: back to back)"
    )
    args = parser.parse_args()
    read = Path(args.read_model) if args.read_model else None
    if read is not None and not read.is_file():
        raise SystemExit(f"bench.loop_stall: {read} not found (--read-model '' to read none)")
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
            run = measure(queue, model, args.tokens, read, args.read_every)
            result = loop.run_until_complete(run)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
