"""One attempt's writer: its text, token events and progress, batched into few round trips."""

from __future__ import annotations

import json
import time
from typing import Any

from worker.queue.eta import EtaEstimator
from worker.queue.ledger import Ledger


class StreamPublisher:
    """Buffers one attempt's text and writes it every `flush_s`, fenced by its attempt number.

    A batch appends to the attempt's durable output and adds a `tokens` event to the job's
    stream; at most every `progress_s` it also updates the live token counts and puts a
    progress event on the global stream. Each batch is one atomic script (Ledger.publish),
    which also reads the job's cancel flag and refuses the writes of an attempt that is no
    longer current: the publisher then raises AttemptSuperseded, and the attempt must stop.

    The `eta` it publishes is its own steady estimate (EtaEstimator), not the engine's raw
    one: the table, the detail pane and the HTTP API all read it from these events. `eta`:
    the estimator to use (default: a fresh one on the monotonic clock).
    """

    def __init__(
        self,
        ledger: Ledger,
        job_id: str,
        attempt: int,
        *,
        flush_s: float = 0.025,
        progress_s: float = 0.25,
        eta: EtaEstimator | None = None,
    ) -> None:
        self.ledger = ledger
        self.job_id = job_id
        self.attempt = attempt
        self.flush_s = flush_s
        self.progress_s = progress_s
        self._pending: list[str] = []
        self._first_at = 0.0  # wall time the oldest pending text was produced
        self._last_flush = 0.0
        self._last_progress = 0.0
        self._stats: dict[str, Any] = {}
        self._offset = 0  # bytes of output stored so far
        self.cancel_seen = False
        self._eta = eta if eta is not None else EtaEstimator()  # on the monotonic clock

    def _event(self, data: dict[str, Any]) -> str:
        data["id"] = self.job_id
        data["attempt"] = self.attempt
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def progress(self, phase: str, **stats: Any) -> None:
        """Publish a phase change or progress at once, to the job's and the global stream."""
        self._stats = {"type": "progress", "phase": phase, **stats}
        event = self._event(dict(self._stats))
        cancel = self.ledger.publish(self.job_id, self.attempt, job_event=event, global_event=event)
        self.cancel_seen = self.cancel_seen or cancel
        self._last_progress = time.monotonic()

    def add(self, text: str, at: float | None = None, **stats: Any) -> bool:
        """Queue text (may be empty, produced at wall time `at`, default now) with the latest
        stats; flushes when due. True: the job is to be cancelled."""
        if text:
            if not self._pending:
                self._first_at = at if at is not None else time.time()
            self._pending.append(text)
        self._stats = {"type": "progress", "phase": "generating", **stats}
        if "done" in stats:
            done, total = int(stats["done"] or 0), int(stats.get("total") or 0)
            self._stats["eta"] = self._eta.update(done, total)
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()
        return self.cancel_seen

    def flush(self) -> bool:
        """Write what is pending now. Returns whether the job's cancel flag is set.

        The text goes out at once (output and job stream); the live counts on the job's
        hash and the global progress event only every `progress_s`.
        """
        text = "".join(self._pending)
        data = text.encode()
        stamp = time.monotonic()
        counts = bool(self._stats) and stamp - self._last_progress >= self.progress_s
        if not data and not counts:
            self._last_flush = stamp
            return self.cancel_seen
        job_event = ""
        if text:
            # t0: when the batch's first text was produced; t: when it was written.
            job_event = self._event({**self._stats, "type": "tokens", "text": text,
                                     "t0": self._first_at, "t": time.time()})  # fmt: skip
        # SETRANGE at the known offset, not APPEND: if the server dies after storing a batch
        # but before replying, the client's retry rewrites the same bytes.
        cancel = self.ledger.publish(
            self.job_id,
            self.attempt,
            offset=self._offset,
            text=data,
            job_event=job_event,
            completion_tokens=self._stats.get("done", 0) if counts else None,
            tokens_per_second=self._stats.get("tps") if counts else None,
            global_event=self._event(dict(self._stats)) if counts else "",
        )
        self._pending.clear()
        self._last_flush = stamp
        if counts:
            self._last_progress = stamp
        self._offset += len(data)
        self.cancel_seen = self.cancel_seen or cancel
        return self.cancel_seen
