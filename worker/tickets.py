"""A job handed to the batch engine: its events flow from the loop thread to the caller's."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from worker.engine import LoadOptions, ProgressFn, StopSignal, TextFn
from worker.spec import JobSpec

PROGRESS, TEXT, DONE, FAILED = range(4)  # kinds of Ticket events


@dataclass(frozen=True)
class StepInfo:
    """What one llama_decode call carried, by ticket id (for tests and diagnostics)."""

    step: int
    prompt: dict[int, int]  # ticket id -> prompt tokens read in this step
    generated: tuple[int, ...]  # tickets that decoded their last sampled token


class Ticket:
    """A submitted job. The loop thread posts its events; `wait()` plays them to callbacks."""

    _ids = itertools.count(1)

    def __init__(
        self,
        spec: JobSpec | None,
        path: Path,
        options: LoadOptions,
        stop: StopSignal | None = None,
    ) -> None:
        self.id = next(self._ids)
        self.spec = spec  # None: a request to load the model only (ensure_model)
        self.path = path
        self.options = options
        self.stop = stop
        self.rank = spec.priority.rank if spec is not None else -1
        self.cancel: str | None = None  # set by the submitting thread
        self.admitted_step: int | None = None
        self.finished_step: int | None = None
        self._events: SimpleQueue[tuple[int, Any, Any]] = SimpleQueue()

    def reason(self) -> str | None:
        """Why the job must stop now (cancelled, timed out, shutdown), or None."""
        if self.cancel is not None:
            return self.cancel
        return self.stop.reason() if self.stop is not None else None

    def post(self, kind: int, value: Any = None, extra: Any = None) -> None:
        self._events.put((kind, value, extra))

    def wait(self, on_progress: ProgressFn | None = None, on_text: TextFn | None = None) -> Any:
        """Run callbacks until the job ends: its result, or Cancelled / EngineError raised.

        A callback that raises cancels the job, which then leaves the batch by itself.
        """
        try:
            while True:
                kind, value, extra = self._events.get()
                if kind == TEXT:
                    done, total, tps, eta = extra
                    if on_text is not None and on_text(
                        value, done=done, total=total, tps=tps, eta=eta
                    ):
                        self.cancel = self.cancel or "cancelled"
                elif kind == PROGRESS:
                    if on_progress is not None:
                        on_progress(*value, **extra)
                elif kind == DONE:
                    return value
                else:
                    raise value
        except BaseException:
            self.cancel = self.cancel or "cancelled"
            raise
