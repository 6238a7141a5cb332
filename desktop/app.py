"""`promptspool` / `promptspool gui`: the QApplication, its qasync loop and one window per user."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from logging.handlers import RotatingFileHandler
from types import FrameType
from typing import Any

import qasync
from PySide6.QtCore import QObject, QSocketNotifier
from PySide6.QtWidgets import QApplication

from desktop.common.icons import app_icon
from desktop.common.theme import follow_system_theme
from desktop.controller import Controller
from desktop.services.single_instance import SingleInstance
from worker.settings import Settings

log = logging.getLogger(__name__)


def make_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication with PromptSpool's name and icon; lives in the tray when allowed."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        app = QApplication(list(argv or ["promptspool"]))
    app.setApplicationName("PromptSpool")
    app.setApplicationDisplayName("PromptSpool")
    app.setOrganizationName("PromptSpool")
    app.setDesktopFileName("promptspool")
    app.setWindowIcon(app_icon())
    app.setQuitOnLastWindowClosed(False)
    follow_system_theme(app)
    return app


def _log_to_file(settings: Settings) -> None:
    path = settings.paths.logs / "desktop.log"
    handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    for existing in root.handlers:  # the terminal keeps getting warnings only
        if existing.level == logging.NOTSET:
            existing.setLevel(logging.WARNING)
    root.addHandler(handler)
    for name in ("desktop", "worker"):
        logging.getLogger(name).setLevel(logging.INFO)


class SignalWaker(QObject):
    """Runs Python's SIGINT/SIGTERM handlers promptly while Qt's loop waits in C++."""

    def __init__(self, on_signal: Any) -> None:
        super().__init__()
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._write.fileno())
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)

        def handler(_signum: int, _frame: FrameType | None) -> None:
            on_signal()

        self._handlers = {
            sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _drain(self, *_: Any) -> None:
        with contextlib.suppress(OSError):
            self._read.recv(64)  # the Python-level handlers run as this returns to Python

    def close(self) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous)
        self._notifier.setEnabled(False)
        self._read.close()
        self._write.close()


def run_app(settings: Settings, argv: Sequence[str] | None = None) -> int:
    """Open the window (or bring the running one forward); returns the exit status."""
    app = make_application(argv if argv is not None else sys.argv[:1])
    paths = settings.paths.ensure()
    single = SingleInstance(paths.runtime)
    if not single.acquire():
        if single.notify_running():
            print("promptspool: already running; brought its window to the front")
            return 0
        print("promptspool: another instance holds the lock but does not answer", file=sys.stderr)
        return 1
    _log_to_file(settings)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    gc.freeze()  # modules and classes live as long as the app: no full GC passes over them
    controller = Controller(settings)
    single.activated.connect(controller.window.bring_to_front)
    waker = SignalWaker(controller.request_quit)
    try:
        with loop:
            return int(loop.run_until_complete(controller.run()))
    finally:
        waker.close()
        single.release()
        asyncio.set_event_loop(None)
