"""`submit`: prompts from files, folders and --prompt, with the settings' defaults under them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.cli.batches import cli_defaults, submit_batch_files
from worker.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_command,
    open_client,
    say_refused,
)
from worker.cli.terminal import one_line, say
from worker.jobs.job import JobState
from worker.jobs.promptformat import check_prompt_format
from worker.jobs.spec import JobSpec, Priority
from worker.jobs.validation import describe_validation_error
from worker.settings import Settings


def register(sub: Any) -> None:
    p = add_command(sub, "submit", cmd_submit,
                    "queue prompts from files, folders or --prompt; an OpenAI batch file "
                    "(.jsonl with custom_id and url) becomes a batch")  # fmt: skip
    p.add_argument("paths", nargs="*", type=Path, metavar="FILE|DIR")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--model", help="GGUF model (default: PROMPTSPOOL_MODEL or the settings)")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--priority", choices=[x.value for x in Priority])
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument(
        "--system",
        metavar="TEXT",
        help='system prompt: instructions the model reads first ("": none)',
    )
    p.add_argument("--format", type=_prompt_format, metavar="NAME", dest="prompt_format",
                   help="prompt format: auto (the model's chat template, else raw text), raw, "
                   "or a llama.cpp built-in template such as chatml, llama3, gemma")  # fmt: skip
    p.add_argument("--wait", action="store_true", help="wait until the jobs end")
    p.add_argument("--json", action="store_true")


def _prompt_format(value: str) -> str:
    """--format's value, checked; argparse prints the reason and the nearest name."""
    try:
        return check_prompt_format(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
        "priority": args.priority,
        "timeout": args.timeout,
        "system": args.system,
        "prompt_format": args.prompt_format,
    }


def job_defaults(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The settings' defaults for new jobs, with what the command line gave on top."""
    defaults = cli_defaults(settings, args.model, _given(args))
    if "model" not in defaults:
        raise CliError("no model: pass --model PATH.gguf or set PROMPTSPOOL_MODEL")
    return defaults


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    from worker.jobs.promptfiles import split_batch_files

    if not args.paths and not args.prompt:
        raise CliError("nothing to submit: give FILE|DIR arguments or --prompt TEXT", EXIT_FAILED)
    batch_files, paths = split_batch_files(args.paths)
    code = EXIT_OK
    if batch_files:  # OpenAI batch files: each one a batch
        if args.system is not None or args.prompt_format is not None:
            say("promptspool: --system and --format do not apply to OpenAI batch files "
                "(their requests bring their own messages)")  # fmt: skip
        defaults = cli_defaults(settings, args.model, _given(args))
        code = submit_batch_files(batch_files, defaults, settings, args)
        if not paths and not args.prompt:
            return code
    return max(code, _submit_jobs(args, settings, paths))


def _submit_jobs(args: argparse.Namespace, settings: Settings, paths: list[Path]) -> int:
    from worker.jobs.intake import plan

    defaults = job_defaults(args, settings)
    specs: list[JobSpec] = []
    for text in args.prompt:
        try:
            specs.append(JobSpec(**{**defaults, "prompt": text}))
        except ValidationError as exc:
            raise CliError(f"--prompt: {describe_validation_error(exc)}") from exc
    loaded = plan(paths, defaults, deep=True, endpoints=settings.endpoint_names)
    for refusal in loaded.refused:  # a file of job specs: each bad line listed under it
        say_refused(refusal.path, refusal.reason, refusal.problems)
    specs.extend(loaded.specs)
    if not specs:
        return EXIT_FAILED
    with open_client(settings) as client:
        try:
            ids = client.submit(specs)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        if not args.json:
            sys.stdout.write("".join(f"{job_id}\n" for job_id in ids))
            sys.stdout.flush()
        code = EXIT_FAILED if loaded.refused else EXIT_OK
        if args.wait:
            jobs = [client.wait(job_id) for job_id in ids]
            for job in jobs:
                if job.state is not JobState.succeeded:
                    code = EXIT_FAILED
                    say(f"promptspool: job {job.id} {job.state.value}: {one_line(job.error)}")
        elif args.json:
            jobs = client.get_many(ids)
        if args.json:
            print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
    return code
