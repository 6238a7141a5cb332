"""`promptspool`: the core's command line plus `gui`, the default, which alone loads Qt."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from worker.cli import main as cli_main
from worker.cli.common import CliError, add_command
from worker.settings import Settings


def register_gui(sub: Any) -> None:
    add_command(sub, "gui", cmd_gui, "open the window (the default)")


def cmd_gui(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from desktop.app import run_app
    except ImportError as exc:
        raise CliError(f"the desktop app cannot start: {exc}") from exc
    return int(run_app(settings))


def main(argv: Sequence[str] | None = None) -> int:
    """The `promptspool` entry point: without a command it opens the window."""
    return cli_main(argv, extra=[register_gui], default_command="gui")
