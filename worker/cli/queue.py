"""The queue commands: pause, resume, and the live workers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from worker.cli.common import EXIT_OK, add_command, open_client
from worker.cli.terminal import one_line
from worker.settings import Settings


def register(sub: Any) -> None:
    add_command(sub, "pause", cmd_pause, "workers take no new jobs; running ones finish")
    add_command(sub, "resume", cmd_resume, "workers take queued jobs again")
    p = add_command(
        sub, "workers", cmd_workers, "the live workers: model, slots, jobs, batch figures"
    )
    p.add_argument("--json", action="store_true")


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        already = client.is_paused()
        client.pause()
    if already:
        print("the queue was already paused")
    else:
        print("queue paused: running jobs finish, queued jobs wait for `promptspool resume`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        was_paused = client.is_paused()
        sent = client.resume()
    state = "queue resumed" if was_paused else "the queue was not paused"
    print(f"{state}: {sent} queued job{'s' if sent != 1 else ''} sent to the workers")
    return EXIT_OK


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    from worker.engine.stats import BatchStats

    with open_client(settings) as client:
        workers = client.workers()
    if args.json:
        print(json.dumps(workers, indent=2))
        return EXIT_OK
    if not workers:
        print("no worker is running (start one with `promptspool serve` or `worker`)")
        return EXIT_OK
    row = "{:<22}  {:<12}  {:>5}  {:>4}  {:<4}  {:>9}  {:>8}  {:>8}  {}"
    print(row.format("WORKER", "HOST", "SLOTS", "JOBS", "GPU", "TOK/STEP", "DECODE", "HOST",
                     "MODEL"))  # fmt: skip
    for w in workers:
        # Means over the worker's generation steps so far: tokens, llama_decode, the rest.
        means = BatchStats(**(w.get("batch") or {})).since({})
        tokens, decode, host = (
            (f"{means['tokens_per_step']:.1f}", f"{means['decode_ms_per_step']:.2f}ms",
             f"{means['host_ms_per_step']:.2f}ms")
            if means["steps"] else ("-", "-", "-")
        )  # fmt: skip
        model = one_line(Path(w["model"]).name) if w.get("model") else "-"
        gpu = "yes" if (w.get("gpu") or {}).get("active") else "no"
        name, machine = one_line(w.get("id", "?")), one_line(w.get("host", "?"))
        print(row.format(name, machine, w.get("slots", "?"), len(w.get("jobs") or []), gpu,
                         tokens, decode, host, model))  # fmt: skip
    return EXIT_OK
