"""A job handed to the batch engine: its events flow from the loop thread to the caller's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from worker.engine.api import LoadOptions, ProgressFn, StopSignal, TextFn
from worker.jobs.spec import JobSpec

PROGRESS, DONE, FAILED = range(3)  # kinds of Ticket events


@dataclass(frozen=True)
class StepInfo:
    """What one llama_decode call carried, by ticket id (for tests and diagnostics)."""

    step: int
    prompt: dict[int, int]  # ticket id -> prompt tokens read in this step
    generated: tuple[int, ...]  # tickets that decoded their last sampled token


class Ticket:
    """A submitted job. The loop thread posts its events; `wait()` plays them to callbacks.

    Text does not travel as events: the loop thread hands each token's text to `on_text`
    itself, which must only record it (a worker's publisher writes it out in batches). No
    thread wakes up per token; the waiting thread wakes for progress and for the end.
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        spec: JobSpec | None,
        path: Path,
        options: LoadOptions,
        stop: StopSignal | None = None,
        on_text: TextFn | None = None,
    ) -> None:
        self.id = next(self._ids)
        self.spec = spec  # None: a request to load the model only (ensure_model)
        self.path = path
        self.options = options
        self.stop = stop
        self.on_text = on_text
        self.rank = spec.priority.rank if spec is not None else -1
        self.cancel: str | None = None  # set by the submitting thread or by on_text
        self.admitted_step: int | None = None
        self.finished_step: int | None = None
        self._events: SimpleQueue[tuple[int, Any, Any]] = SimpleQueue()
        self._text_error: BaseException | None = None  # what on_text raised

    def reason(self) -> str | None:
        """Why the job must stop now (cancelled, timed out, shutdown), or None."""
        if self.cancel is not None:
            return self.cancel
        return self.stop.reason() if self.stop is not None else None

    def post(self, kind: int, value: Any = None, extra: Any = None) -> None:
        self._events.put((kind, value, extra))

    def post_text(self, text: str, done: int, total: int, tps: float | None) -> None:
        """Hand a token's text (may be empty) and the counts after it to `on_text`, on the
        loop thread. If it asks to cancel, or raises, the job stops at the next step (and
        `wait()` raises what it raised)."""
        if self.on_text is None or self._text_error is not None:
            return
        try:
            if self.on_text(text, done=done, total=total, tps=tps):
                self.cancel = self.cancel or "cancelled"
        except Exception as exc:
            self._text_error = exc
            self.cancel = self.cancel or "cancelled"

    def wait(self, on_progress: ProgressFn | None = None) -> Any:
        """Run on_progress until the job ends: its result, or Cancelled / EngineError raised
        (or what on_text raised). If on_progress raises, the job is cancelled and leaves the
        batch by itself."""
        try:
            while True:
                kind, value, extra = self._events.get()
                if kind == PROGRESS:
                    if on_progress is not None:
                        on_progress(*value, **extra)
                    continue
                if self._text_error is not None:
                    raise self._text_error
                if kind == DONE:
                    return value
                raise value
        except BaseException:
            self.cancel = self.cancel or "cancelled"
            raise
