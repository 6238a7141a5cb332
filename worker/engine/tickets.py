"""A job handed to the batch engine: its events flow from the loop thread to the caller's."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from worker.engine.api import LoadOptions, ProgressFn, StopSignal, TextFn
from worker.jobs.spec import JobSpec

PROGRESS, TEXT, DONE, FAILED = range(4)  # kinds of Ticket events


@dataclass(frozen=True)
class StepInfo:
    """What one llama_decode call carried, by ticket id (for tests and diagnostics)."""

    step: int
    prompt: dict[int, int]  # ticket id -> prompt tokens read in this step
    generated: tuple[int, ...]  # tickets that decoded their last sampled token


class Ticket:
    """A submitted job. The loop thread posts its events; `wait()` plays them to callbacks.

    Text is coalesced: the loop thread appends each token's text to the ticket and wakes
    the waiting thread only when no wake-up is pending already, and the waiting thread
    hands text on at most once per `text_interval` seconds (the first text at once). With
    32 jobs streaming, their threads then wake ~40 times a second each, not once per token,
    and leave the loop thread the GIL for the next decode.
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        spec: JobSpec | None,
        path: Path,
        options: LoadOptions,
        stop: StopSignal | None = None,
        text_interval: float = 0.0,
    ) -> None:
        self.id = next(self._ids)
        self.spec = spec  # None: a request to load the model only (ensure_model)
        self.path = path
        self.options = options
        self.stop = stop
        self.text_interval = text_interval
        self.rank = spec.priority.rank if spec is not None else -1
        self.cancel: str | None = None  # set by the submitting thread
        self.admitted_step: int | None = None
        self.finished_step: int | None = None
        self._events: SimpleQueue[tuple[int, Any, Any]] = SimpleQueue()
        self._lock = threading.Lock()
        self._text: list[str] = []  # produced, not yet handed on
        self._text_at = 0.0  # wall time the oldest of it was produced
        self._counts: tuple[int, int, float | None, float | None] = (0, 0, None, None)
        self._signalled = False  # a TEXT wake-up is queued or being handled
        self._next_delivery = 0.0  # monotonic time text may next be handed on

    def reason(self) -> str | None:
        """Why the job must stop now (cancelled, timed out, shutdown), or None."""
        if self.cancel is not None:
            return self.cancel
        return self.stop.reason() if self.stop is not None else None

    def post(self, kind: int, value: Any = None, extra: Any = None) -> None:
        self._events.put((kind, value, extra))

    def post_text(
        self, text: str, done: int, total: int, tps: float | None, eta: float | None
    ) -> None:
        """Add a token's text (may be empty) and the counts after it; wake the waiter once."""
        with self._lock:
            if not self._text:
                self._text_at = time.time()
            self._text.append(text)
            self._counts = (done, total, tps, eta)
            if self._signalled:
                return
            self._signalled = True
        self._events.put((TEXT, None, None))

    def wait(self, on_progress: ProgressFn | None = None, on_text: TextFn | None = None) -> Any:
        """Run callbacks until the job ends: its result, or Cancelled / EngineError raised.

        Text produced before the end is handed on before the result or the error. A
        callback that raises or asks to cancel cancels the job, which then leaves the batch
        by itself.
        """
        try:
            while True:
                kind, value, extra = self._events.get()
                if kind == TEXT:
                    self._pace(on_progress, on_text)
                    self._deliver(on_text)
                else:
                    self._handle(kind, value, extra, on_progress, on_text)
        except _Ended as ended:
            return ended.value
        except BaseException:
            self.cancel = self.cancel or "cancelled"
            raise

    def _pace(self, on_progress: ProgressFn | None, on_text: TextFn | None) -> None:
        """Until text may be handed on again, handle the other events as they come."""
        while (left := self._next_delivery - time.monotonic()) > 0:
            try:
                kind, value, extra = self._events.get(timeout=left)
            except Empty:
                return
            self._handle(kind, value, extra, on_progress, on_text)

    def _handle(
        self, kind: int, value: Any, extra: Any, on_progress: ProgressFn | None,
        on_text: TextFn | None,
    ) -> None:  # fmt: skip
        if kind == PROGRESS:
            if on_progress is not None:
                on_progress(*value, **extra)
            return
        self._deliver(on_text)  # what was produced before the end
        if kind == DONE:
            raise _Ended(value)
        raise value

    def _deliver(self, on_text: TextFn | None) -> None:
        with self._lock:
            self._signalled = False
            if not self._text:
                return
            text, at = "".join(self._text), self._text_at
            self._text.clear()
            done, total, tps, eta = self._counts
        self._next_delivery = time.monotonic() + self.text_interval
        if on_text is not None and on_text(text, done=done, total=total, tps=tps, eta=eta, at=at):
            self.cancel = self.cancel or "cancelled"


class _Ended(Exception):
    """Carries a job's result out of the wait loop."""

    def __init__(self, value: Any) -> None:
        self.value = value
