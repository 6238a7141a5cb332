"""The `promptspool` command line: one module per group of commands, dispatched by `main`."""

from worker.cli.main import main

__all__ = ["main"]
