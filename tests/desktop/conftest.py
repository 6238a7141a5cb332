"""Fixtures for the desktop tests: offscreen Qt, a qasync loop, and the app over a test queue.

Every test in this folder is marked `gui`; helpers are in `tests.desktop.support`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the QApplication

import qasync
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.services.library import LibraryService
from tests.desktop.support import close_app, open_app
from worker.testing.harness import Queue

HERE = Path(__file__).parent
# The offscreen platform warns about window features it lacks (size hints, raise()).
GUI_MARKS = (pytest.mark.gui, pytest.mark.qt_log_ignore("This plugin does not support"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            for mark in GUI_MARKS:
                item.add_marker(mark)


@pytest.fixture(autouse=True)
def no_http_api(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app under test runs no HTTP API unless the test gives it a port: a fixed default
    port would be shared with every other test run on the machine."""
    monkeypatch.setenv("PROMPTSPOOL_HTTP_PORT", "0")


@pytest.fixture(autouse=True)
def no_other_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's model library looks in the test's own folders only, never in where this
    machine's other tools (Hugging Face, LM Studio, Ollama...) keep their models."""
    monkeypatch.setattr(LibraryService, "default_places", [])


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop running inside Qt's: qtbot's waits run its callbacks too."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    asyncio.events._set_running_loop(None)
    # stop() would call QApplication.exit(), which ends later tests' waits early.
    loop._QEventLoop__is_running = False
    loop.close()
    assert not pending, f"tasks left running: {pending}"


@pytest.fixture
def desk(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, queue: Queue) -> Iterator[Controller]:
    """The app over `queue` (no worker unless the test starts one)."""
    controller = open_app(qtbot, qloop, queue)
    yield controller
    close_app(qtbot, controller)
