"""The job commands: list, show, watch, cancel, retry and export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from worker.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_command,
    open_client,
)
from worker.cli.terminal import one_line, say, text_for
from worker.jobs.export import FORMATS, export_text
from worker.jobs.job import JobState
from worker.settings import Settings


def register(sub: Any) -> None:
    p = add_command(sub, "list", cmd_list, "list jobs")
    p.add_argument("--state", choices=[s.value for s in JobState], action="append")
    p.add_argument("--json", action="store_true")
    p = add_command(sub, "show", cmd_show, "one job in full")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    add_command(sub, "watch", cmd_watch, "print a job's text as it streams").add_argument("id")
    add_command(sub, "cancel", cmd_cancel, "cancel a job").add_argument("id")
    add_command(sub, "retry", cmd_retry, "queue a finished job again").add_argument("id")
    p = add_command(sub, "export", cmd_export, "write jobs' outputs")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("-o", "--output", type=Path)


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    states = [JobState(s) for s in args.state] if args.state else None
    with open_client(settings) as client:
        jobs = client.list(states)
    if args.json:
        print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
        return EXIT_OK
    row = "{:<12}  {:<9}  {:<6}  {:>4}  {:>7}  {:>7}  {:>6}  {}"
    print(row.format("ID", "STATE", "PRI", "POS", "TOKENS", "TOK/S", "TIME", "TITLE"))
    for job in jobs:
        tps = f"{job.tokens_per_second:.1f}" if job.tokens_per_second else "-"
        pos = str(job.queue_position) if job.queue_position else "wait" if job.retry_at else "-"
        duration = _fmt_time(job.duration)
        print(row.format(job.id, job.state.value, job.priority, pos, job.completion_tokens, tps,
                         duration, one_line(job.title)))  # fmt: skip
    return EXIT_OK


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        job = client.get(args.id)
    if args.json:
        print(json.dumps(job.model_dump(mode="json"), indent=2))
        return EXIT_OK
    print(f"job {job.id}: {job.state.value} (attempt {job.attempt})")
    print(
        f"title:   {one_line(job.title)}\nmodel:   {one_line(job.model)}\npriority: {job.priority}"
    )
    if job.queue_position:
        print(f"queue position: {job.queue_position}")
    waiting = job.waiting_note()
    if waiting:
        print(f"waiting: {one_line(waiting)}")
    print(f"tokens:  {job.prompt_tokens} prompt, {job.completion_tokens} generated"
          + (f", {job.tokens_per_second:.1f} tok/s" if job.tokens_per_second else ""))  # fmt: skip
    if job.error:
        print(f"error:   {one_line(job.error)}")
    print("\n" + text_for(sys.stdout, job.output))
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        job = client.get(args.id, with_output=False)
        attempt = job.attempt
        for event in client.events(args.id):
            if event.attempt > attempt and event.type == "state":
                attempt = event.attempt
                say(f"\n[attempt {attempt}: {one_line(event.data.get('error') or 'retried')}]")
            if event.attempt != attempt:
                continue
            if event.type == "tokens":
                sys.stdout.write(text_for(sys.stdout, event.data["text"]))
                sys.stdout.flush()
            state = event.state
            if state is not None and state.finished:
                sys.stdout.write("\n")
                if state is JobState.succeeded:
                    return EXIT_OK
                say(
                    f"promptspool: job {args.id} {state.value}: {one_line(event.data.get('error'))}"
                )
                return EXIT_CANCELLED if state is JobState.cancelled else EXIT_FAILED
    return EXIT_FAILED


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        result = client.cancel(args.id)
    print(f"{args.id}: {'cancelled' if result == 'cancelled' else 'stopping'}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        attempt = client.retry(args.id)
    print(f"{args.id}: queued again (attempt {attempt})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        if args.ids:
            jobs = [client.get(job_id) for job_id in args.ids]
        else:
            jobs = client.list(with_output=True)
    text = export_text(jobs, args.format)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {one_line(args.output)}: {exc.strerror or exc}") from exc
        print(f"wrote {len(jobs)} jobs to {one_line(args.output)}")
    else:
        sys.stdout.write(text_for(sys.stdout, text))
    return EXIT_OK
