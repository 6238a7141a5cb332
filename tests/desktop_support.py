"""Fixtures for the desktop tests: offscreen Qt, a qasync loop, and the app over a test queue.

Test modules import the fixtures they use (`from tests.desktop_support import desk_fixture`);
each fixture is registered under its `name=`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the QApplication

import qasync
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from tests.harness import Queue

# The offscreen platform warns about window features it lacks (size hints, raise()).
GUI_MARKS = [pytest.mark.gui, pytest.mark.qt_log_ignore("This plugin does not support")]
READY_MS = 30_000
QUIT_MS = 60_000


@pytest.fixture(name="qloop")
def qloop_fixture(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop running inside Qt's: qtbot's waits run its callbacks too."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    asyncio.events._set_running_loop(None)
    # stop() would call QApplication.exit(), which ends later tests' waits early.
    loop._QEventLoop__is_running = False
    loop.close()
    assert not pending, f"tasks left running: {pending}"


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


@pytest.fixture(name="desk")
def desk_fixture(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, queue: Queue
) -> Iterator[Controller]:
    """The app over `queue` (no worker unless the test starts one)."""
    controller = open_app(qtbot, qloop, queue)
    yield controller
    close_app(qtbot, controller)
