"""Blocking calls on short-lived threads; their answers come back on the GUI thread."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

T = TypeVar("T")
Done = Callable[[Any, BaseException | None], None]


class _Relay(QObject):
    """Lives on the GUI thread; a signal emitted from another thread reaches it queued."""

    answered = Signal(object, object, object, object)  # guard, done, result, error

    def __init__(self) -> None:
        super().__init__()
        self.answered.connect(self._deliver)

    @staticmethod
    def _deliver(guard: QObject, done: Done, result: object, error: BaseException | None) -> None:
        if shiboken6.isValid(guard):  # the widget that asked is still there
            done(result, error)


@functools.cache
def _the_relay() -> _Relay:
    """Made on the GUI thread, on the first call (which the GUI thread makes)."""
    return _Relay()


def run_off_thread(
    guard: QObject, fn: Callable[[], T], done: Callable[[T | None, BaseException | None], None]
) -> None:
    """Call `fn()` on a daemon thread, then `done(result, None)` or `done(None, error)` on the
    GUI thread, unless `guard` (the widget that asked) has been deleted by then.

    For calls like an endpoint's model list that neither the queue's client pool nor the
    asyncio loop need to know about: the GUI thread never waits for them.
    """
    relay = _the_relay()

    def work() -> None:
        try:
            result: T | None = fn()
            error: BaseException | None = None
        except Exception as exc:
            result, error = None, exc
        try:
            relay.answered.emit(guard, done, result, error)
        except RuntimeError:  # the app is gone
            log.debug("an off-thread call ended after the app")

    threading.Thread(target=work, name="promptspool-offthread", daemon=True).start()
