"""The `promptspool` command line: the parser, the dispatch and the one-line error reports.

Building the parser imports no command's work: each handler imports what it needs when it
runs, so `list`, `show` and `submit` start without Celery, kombu, numpy or the HTTP API.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from worker import __version__
from worker.cli import api, batches, hosting, jobs, models, queue, submit
from worker.cli.commandclient import FORWARDED
from worker.cli.common import EXIT_FAILED, EXIT_NO_QUEUE, EXIT_OK, CliError, Registrar
from worker.cli.terminal import one_line, say
from worker.settings import Settings, SettingsFileError, load_settings

PRIVATE_UMASK = 0o077


def register_command_server(sub: Any) -> None:
    """`cli-server`, hidden: started by the first short command that finds none."""
    p = sub.add_parser("cli-server", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_cli_server)
    p.add_argument("--idle", type=float, default=None, help=argparse.SUPPRESS)


def cmd_cli_server(args: argparse.Namespace, settings: Settings) -> int:
    from worker.cli.commandserver import IDLE_EXIT_S, serve

    logging.getLogger().setLevel(logging.INFO)
    parser(())  # the children's parser (they run main without extras), built once here
    run = functools.partial(main, start_command_server=False)
    return serve(settings.paths, run, IDLE_EXIT_S if args.idle is None else args.idle)


GROUPS: tuple[Registrar, ...] = (
    hosting.register,
    api.register,
    submit.register,
    batches.register,
    jobs.register,
    queue.register,
    models.register,
    register_command_server,
)


def build_parser(extra: Sequence[Registrar] = ()) -> argparse.ArgumentParser:
    """The parser with the core's commands, after those that `extra` adds (the desktop's)."""
    parser = argparse.ArgumentParser(
        prog="promptspool", description="Queue prompts as durable jobs for a local LLM."
    )
    parser.add_argument("--version", action="version", version=f"promptspool {__version__}")
    parser.add_argument(
        "--self-test", action="store_true", help="start a server and a worker, run one job, exit"
    )
    parser.add_argument("--model", dest="self_test_model", metavar="FILE", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in (*extra, *GROUPS):
        register(sub)
    return parser


@functools.cache
def parser(extra: tuple[Registrar, ...] = ()) -> argparse.ArgumentParser:
    """The parser, built once per process (the command server builds it before it forks)."""
    return build_parser(extra)


def main(
    argv: Sequence[str] | None = None,
    *,
    extra: Sequence[Registrar] = (),
    default_command: str | None = None,
    start_command_server: bool = True,
) -> int:
    """Run one command; its exit status. Without a command: `default_command`, else the help.

    A short command run here (not by the command server) starts a command server for the
    next ones, when the `cli_server` setting allows; `start_command_server=False` is the
    server's own children."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # What PromptSpool writes is the user's alone (0600 files, 0700 folders): settings,
    # logs, exports, and what the processes it starts write (the server's append-only file).
    os.umask(PRIVATE_UMASK)
    command_line = parser(tuple(extra))
    args = command_line.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except ValidationError as exc:
        from worker.jobs.validation import describe_validation_error

        say(f"promptspool: bad setting: {one_line(describe_validation_error(exc))}")
        return EXIT_FAILED
    except SettingsFileError as exc:
        say(f"promptspool: bad settings file {one_line(exc)}")
        return EXIT_FAILED
    if args.self_test:
        from worker.hosting.selftest import run_self_test

        if not args.self_test_model:
            print("promptspool: --self-test needs --model FILE.gguf", file=sys.stderr)
            return EXIT_FAILED
        return run_self_test(args.self_test_model)
    if args.command is None:
        if default_command is None:
            command_line.print_help()
            return EXIT_OK
        args = command_line.parse_args([*argv, default_command])
    try:
        return int(args.handler(args, settings))
    except CliError as exc:
        say(f"promptspool: {one_line(exc)}")
        return exc.code
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as exc:
        return _failure(exc, settings)
    except KeyboardInterrupt:
        return 130
    finally:  # after the command, which it would slow down on a small machine
        if start_command_server and args.command in FORWARDED and settings.cli_server:
            _start_command_server(settings)


def _start_command_server(settings: Settings) -> None:
    """Start the command server for the next commands (this one runs here, already loaded)."""
    try:
        from worker.cli.commandserver import start_in_background

        start_in_background(settings.paths)
    except Exception as exc:  # a convenience: never the command's failure
        logging.getLogger(__name__).debug("no command server: %s", exc)


def _closed_pipe() -> int:
    """The reader of our output went away (`promptspool show ID | head`): stop quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
    return EXIT_OK


def _failure(exc: Exception, settings: Settings) -> int:
    """One line for no queue, an unknown job, a job in the wrong state, or a server that broke
    off or refused a write mid-command; else re-raise. (The queue's modules are imported here,
    once something failed: a command that needs no queue does not load them.)"""
    from worker.queue.connection import (
        NOT_RUNNING_HINT,
        QueueUnavailable,
        disk_full_hint,
        is_queue_outage,
    )
    from worker.queue.ledger import JobStateError, UnknownJobError

    if isinstance(exc, QueueUnavailable):
        say(f"promptspool: {one_line(exc)}")
        return EXIT_NO_QUEUE
    if isinstance(exc, UnknownJobError | JobStateError):
        say(f"promptspool: {one_line(exc)}")
        return EXIT_FAILED
    if not is_queue_outage(exc):
        raise exc
    if hint := disk_full_hint(exc):
        print(f"promptspool: {hint}; free space in {settings.paths.data} and try again "
              "(nothing was changed)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    print(f"promptspool: the queue stopped answering mid-command ({exc}); once it is back, "
          f"check with `promptspool list`; {NOT_RUNNING_HINT}", file=sys.stderr)  # fmt: skip
    return EXIT_NO_QUEUE
