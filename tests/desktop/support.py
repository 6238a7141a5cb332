"""Helpers for the desktop tests: the app over a test queue, opened and closed on signals."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from worker.testing.harness import Queue

READY_MS = 30_000
QUIT_MS = 60_000


def run_soon(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    return loop.create_task(coro)


def open_app(qtbot: QtBot, loop: asyncio.AbstractEventLoop, queue: Queue) -> Controller:
    """The app attached to the test queue (it starts no processes), its jobs loaded."""
    controller = Controller(queue.settings, address=queue.address)
    with qtbot.waitSignal(controller.ready, timeout=READY_MS):
        run_soon(loop, controller.start())
    return controller


def close_app(qtbot: QtBot, controller: Controller) -> None:
    if controller._done.is_set():
        return
    with qtbot.waitSignal(controller.finished, timeout=QUIT_MS):
        controller.request_quit()
