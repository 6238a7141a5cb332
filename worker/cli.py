"""The `promptspool` command line: serve, worker, submit, list, show, watch, cancel, export."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker import __version__
from worker.batchstats import BatchStats
from worker.connection import QueueUnavailable
from worker.jobs import Job, JobState
from worker.ledger import JobStateError, UnknownJobError
from worker.promptfiles import describe_validation_error, load_prompt_paths
from worker.settings import Settings, load_settings
from worker.spec import JobSpec, Priority

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_NO_QUEUE = 0, 1, 2, 3


class CliError(Exception):
    """A refusal for the user: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptspool", description="Queue prompts as durable jobs for a local LLM."
    )
    parser.add_argument("--version", action="version", version=f"promptspool {__version__}")
    parser.add_argument(
        "--self-test", action="store_true", help="start a server and a worker, run one job, exit"
    )
    parser.add_argument("--model", dest="self_test_model", metavar="FILE", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("gui", help="open the window (the default)")
    p = sub.add_parser("serve", help="bundled server + one worker, in the foreground")
    p.add_argument("--remote", metavar="HOST:PORT",
                   help="let workers on other machines join over TLS on this address")  # fmt: skip
    p.add_argument("--tls-cert", type=Path, help="certificate for --remote (default: self-signed)")
    p.add_argument("--tls-key", type=Path, help="its private key")
    p = sub.add_parser("worker", help="run a worker for an existing queue")
    p.add_argument("--redis-url", help="the queue's URL (default: the bundled server)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument(
        "--exit-with-parent", action="store_true",
        help="shut down when the process that started the worker dies (for supervisors)",
    )  # fmt: skip

    p = sub.add_parser("submit", help="queue prompts from files, folders or --prompt")
    p.add_argument("paths", nargs="*", type=Path, metavar="FILE|DIR")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--model", help="GGUF model (default: PROMPTSPOOL_MODEL or the settings)")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--priority", choices=[x.value for x in Priority])
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument("--wait", action="store_true", help="wait until the jobs end")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("list", help="list jobs")
    p.add_argument("--state", choices=[s.value for s in JobState], action="append")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("show", help="one job in full")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    sub.add_parser("pause", help="workers take no new jobs; running ones finish")
    sub.add_parser("resume", help="workers take queued jobs again")
    p = sub.add_parser("workers", help="the live workers: model, slots, jobs, batch figures")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("watch", help="print a job's text as it streams")
    p.add_argument("id")
    for name, text in (("cancel", "cancel a job"), ("retry", "queue a finished job again")):
        sub.add_parser(name, help=text).add_argument("id")
    p = sub.add_parser("export", help="write jobs' outputs")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--format", choices=["md", "json", "jsonl"], required=True)
    p.add_argument("-o", "--output", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"promptspool: bad setting: {describe_validation_error(exc)}", file=sys.stderr)
        return EXIT_FAILED
    if args.self_test:
        from worker.selftest import run_self_test

        if not args.self_test_model:
            print("promptspool: --self-test needs --model FILE.gguf", file=sys.stderr)
            return EXIT_FAILED
        return run_self_test(args.self_test_model)
    command = args.command or "gui"
    try:
        return int(COMMANDS[command](args, settings))
    except CliError as exc:
        print(f"promptspool: {exc}", file=sys.stderr)
        return exc.code
    except QueueUnavailable as exc:
        print(f"promptspool: {exc}", file=sys.stderr)
        return EXIT_NO_QUEUE
    except (UnknownJobError, JobStateError) as exc:
        print(f"promptspool: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        return _queue_failure(exc, settings)
    except KeyboardInterrupt:
        return 130


def _queue_failure(exc: Exception, settings: Settings) -> int:
    """One line for a server that broke off or refused a write mid-command; else re-raise."""
    from worker.connection import NOT_RUNNING_HINT
    from worker.redisio import disk_full_hint, is_queue_outage

    if not is_queue_outage(exc):
        raise exc
    if hint := disk_full_hint(exc):
        print(f"promptspool: {hint}; free space in {settings.paths.data} and try again "
              "(nothing was changed)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    print(f"promptspool: the queue stopped answering mid-command ({exc}); once it is back, "
          f"check with `promptspool list`; {NOT_RUNNING_HINT}", file=sys.stderr)  # fmt: skip
    return EXIT_NO_QUEUE


def _client(settings: Settings) -> Any:
    from worker.client import JobClient

    return JobClient.connect(settings)


def cmd_gui(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from desktop.app import run_app
    except ImportError as exc:
        raise CliError(f"the desktop app cannot start: {exc}") from exc
    return int(run_app(settings))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from worker.serve import Serve

    logging.getLogger().setLevel(logging.INFO)

    def ready(worker_id: str) -> None:
        print(f"promptspool: queue ready; worker {worker_id} is waiting for jobs", flush=True)

    if args.remote:
        from worker.serve import parse_host_port
        from worker.tlsproxy import TlsError

        try:
            parse_host_port(args.remote)
        except ValueError as exc:
            raise CliError(f"--remote {exc}") from exc
        if settings.redis_url:
            raise CliError("--remote serves the bundled server; an external one has its own TLS")
        if (args.tls_cert is None) != (args.tls_key is None):
            raise CliError("give both --tls-cert and --tls-key, or neither (self-signed)")
        serve = Serve(settings, remote=args.remote, tls_cert=args.tls_cert, tls_key=args.tls_key)
        try:
            return serve.run(ready)
        except TlsError as exc:
            raise CliError(str(exc)) from exc
    return Serve(settings).run(ready)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.parentwatch import exit_with_parent
    from worker.workerproc import run_worker

    if args.exit_with_parent:
        exit_with_parent()
    run_worker(settings, args.redis_url, args.loglevel)
    return EXIT_OK


def _defaults(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    model = args.model or (str(settings.model) if settings.model else None)
    if not model:
        raise CliError("no model: pass --model PATH.gguf or set PROMPTSPOOL_MODEL")
    defaults: dict[str, Any] = {
        "model": model,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "min_p": settings.min_p,
        "repeat_penalty": settings.repeat_penalty,
    }
    given = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
        "priority": args.priority,
        "timeout": args.timeout,
    }
    defaults.update({k: v for k, v in given.items() if v is not None})
    return defaults


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    if not args.paths and not args.prompt:
        raise CliError("nothing to submit: give FILE|DIR arguments or --prompt TEXT", EXIT_FAILED)
    defaults = _defaults(args, settings)
    specs: list[JobSpec] = []
    for text in args.prompt:
        try:
            specs.append(JobSpec(**{**defaults, "prompt": text}))
        except ValidationError as exc:
            raise CliError(f"--prompt: {describe_validation_error(exc)}") from exc
    loaded = load_prompt_paths(args.paths, defaults)
    for refusal in loaded.refused:
        print(f"promptspool: refused {refusal}", file=sys.stderr)
    specs.extend(loaded.specs)
    if not specs:
        return EXIT_FAILED
    with _client(settings) as client:
        try:
            ids = client.submit(specs)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        if not args.json:
            for job_id in ids:
                print(job_id, flush=True)
        code = EXIT_FAILED if loaded.refused else EXIT_OK
        if args.wait:
            finished = [client.wait(job_id) for job_id in ids]
            for job in finished:
                if job.state is not JobState.succeeded:
                    code = EXIT_FAILED
                    print(f"promptspool: job {job.id} {job.state.value}: {job.error}",
                          file=sys.stderr)  # fmt: skip
            jobs = finished
        else:
            jobs = [client.get(job_id, with_output=False) for job_id in ids]
        if args.json:
            print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
    return code


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    states = [JobState(s) for s in args.state] if args.state else None
    with _client(settings) as client:
        jobs = client.list(states)
    if args.json:
        print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
        return EXIT_OK
    row = "{:<12}  {:<9}  {:<6}  {:>4}  {:>7}  {:>7}  {:>6}  {}"
    print(row.format("ID", "STATE", "PRI", "POS", "TOKENS", "TOK/S", "TIME", "TITLE"))
    for job in jobs:
        tps = f"{job.tokens_per_second:.1f}" if job.tokens_per_second else "-"
        pos = str(job.queue_position) if job.queue_position else "-"
        duration = _fmt_time(job.duration)
        print(row.format(job.id, job.state.value, job.priority, pos, job.completion_tokens, tps,
                         duration, job.title))  # fmt: skip
    return EXIT_OK


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        already = client.is_paused()
        client.pause()
    if already:
        print("the queue was already paused")
    else:
        print("queue paused: running jobs finish, queued jobs wait for `promptspool resume`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        was_paused = client.is_paused()
        sent = client.resume()
    state = "queue resumed" if was_paused else "the queue was not paused"
    print(f"{state}: {sent} queued job{'s' if sent != 1 else ''} sent to the workers")
    return EXIT_OK


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
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
        model = Path(w["model"]).name if w.get("model") else "-"
        gpu = "yes" if (w.get("gpu") or {}).get("active") else "no"
        print(row.format(w.get("id", "?"), w.get("host", "?"), w.get("slots", "?"),
                         len(w.get("jobs") or []), gpu, tokens, decode, host, model))  # fmt: skip
    return EXIT_OK


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        job = client.get(args.id)
    if args.json:
        print(json.dumps(job.model_dump(mode="json"), indent=2))
        return EXIT_OK
    print(f"job {job.id}: {job.state.value} (attempt {job.attempt})")
    print(f"title:   {job.title}\nmodel:   {job.model}\npriority: {job.priority}")
    if job.queue_position:
        print(f"queue position: {job.queue_position}")
    print(f"tokens:  {job.prompt_tokens} prompt, {job.completion_tokens} generated"
          + (f", {job.tokens_per_second:.1f} tok/s" if job.tokens_per_second else ""))  # fmt: skip
    if job.error:
        print(f"error:   {job.error}")
    print("\n" + job.output)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        job = client.get(args.id, with_output=False)
        attempt = job.attempt
        for event in client.events(args.id):
            if event.attempt > attempt and event.type == "state":
                attempt = event.attempt
                print(f"\n[attempt {attempt}: {event.data.get('error') or 'retried'}]",
                      file=sys.stderr, flush=True)  # fmt: skip
            if event.attempt != attempt:
                continue
            if event.type == "tokens":
                sys.stdout.write(event.data["text"])
                sys.stdout.flush()
            state = event.state
            if state is not None and state.finished:
                sys.stdout.write("\n")
                if state is JobState.succeeded:
                    return EXIT_OK
                print(f"promptspool: job {args.id} {state.value}: {event.data.get('error')}",
                      file=sys.stderr)  # fmt: skip
                return EXIT_CANCELLED if state is JobState.cancelled else EXIT_FAILED
    return EXIT_FAILED


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        result = client.cancel(args.id)
    print(f"{args.id}: {'cancelled' if result == 'cancelled' else 'stopping'}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        attempt = client.retry(args.id)
    print(f"{args.id}: queued again (attempt {attempt})")
    return EXIT_OK


def export_text(jobs: Sequence[Job], fmt: str) -> str:
    """Jobs as Markdown, a JSON list or JSON lines."""
    if fmt == "json":
        return json.dumps([job.model_dump(mode="json") for job in jobs], indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(job.model_dump_json() + "\n" for job in jobs)
    parts = []
    for job in jobs:
        prompt = job.spec.prompt or "\n".join(
            f"{m.role}: {m.content}" for m in job.spec.messages or []
        )
        parts.append(
            f"## {job.title}\n\n*{job.id} · {job.state.value} · {Path(job.model).name}*\n\n"
            f"### Prompt\n\n{prompt}\n\n### Output\n\n{job.output}\n"
            + (f"\n**Error:** {job.error}\n" if job.error else "")
        )
    return "\n".join(parts)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    with _client(settings) as client:
        if args.ids:
            jobs = [client.get(job_id) for job_id in args.ids]
        else:
            jobs = client.ledger.get_many(client.ledger.job_ids(), with_output=True)
    text = export_text(jobs, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(jobs)} jobs to {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


COMMANDS = {
    "gui": cmd_gui,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "submit": cmd_submit,
    "list": cmd_list,
    "show": cmd_show,
    "workers": cmd_workers,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "watch": cmd_watch,
    "cancel": cmd_cancel,
    "retry": cmd_retry,
    "export": cmd_export,
}
