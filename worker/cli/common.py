"""What every command shares: exit codes, refusals, and opening a queue client."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from worker.cli.terminal import one_line, say
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.queue.client import JobClient

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_NO_QUEUE = 0, 1, 2, 3

# A command: (parsed arguments, settings) -> exit status.
Handler = Callable[[argparse.Namespace, Settings], int]
# Adds a group's subcommands to the parser, each with `handler` set as its default.
Registrar = Callable[[Any], None]


class CliError(Exception):
    """A refusal for the user: printed as one line, exit code attached."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def say_refused(path: object, reason: str, problems: Sequence[str] = ()) -> None:
    """'promptspool: refused PATH: REASON' on stderr, then each of its bad lines indented."""
    say(f"promptspool: refused {one_line(path)}: {one_line(reason)}")
    for problem in problems:
        say(f"  {one_line(problem)}")


def add_command(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A subcommand that runs `handler`."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.set_defaults(handler=handler)
    return parser


def open_client(settings: Settings) -> JobClient:
    """A client of the configured queue (imported here: Celery is not needed to start)."""
    from worker.queue.client import JobClient

    return JobClient.connect(settings)
