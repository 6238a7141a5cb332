"""`promptspool`: the core's command line plus `gui`, the default, which alone loads Qt.

Short commands go to the warm command server first, when one runs; nothing heavy is
imported before they must run in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from worker.cli.commandclient import run_through_server

if TYPE_CHECKING:
    import argparse

    from worker.settings import Settings


def register_gui(sub: Any) -> None:
    from worker.cli.common import add_command

    add_command(sub, "gui", cmd_gui, "open the window (the default)")


def cmd_gui(args: argparse.Namespace, settings: Settings) -> int:
    from worker.cli.common import CliError

    try:
        from desktop.app import run_app
    except ImportError as exc:
        raise CliError(f"the desktop app cannot start: {exc}") from exc
    return int(run_app(settings))


def main(argv: Sequence[str] | None = None) -> int:
    """The `promptspool` entry point: without a command it opens the window."""
    argv = list(sys.argv[1:] if argv is None else argv)
    served = run_through_server(argv)
    if served is not None:
        return served
    from worker.cli.main import main as cli_main

    return cli_main(argv, extra=[register_gui], default_command="gui")
