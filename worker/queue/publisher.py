"""A worker's writer: each attempt's text, token events and progress, in few round trips."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from worker.queue.eta import EtaEstimator
from worker.queue.ledger import Ledger, PublishWrite

log = logging.getLogger(__name__)


class StreamPublisher:
    """Buffers one attempt's text and writes it in batches, fenced by its attempt number.

    A batch appends to the attempt's durable output and adds a `tokens` event to the job's
    stream; at most every `progress_s` it also updates the live token counts and puts a
    progress event on the global stream. Each batch is one atomic script (Ledger.publish),
    which also reads the job's cancel flag and refuses the writes of an attempt that is no
    longer current (AttemptSuperseded: the attempt must stop).

    `add()` may be called from any thread, for every token: it only records the text and
    the counts. The batches are written by `flush()`, by `add()` itself when the pending
    text is `flush_s` old, or, with `flush_s=None`, by a `WorkerPublisher` that writes the
    batches of all of a worker's attempts in one round trip.

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
        flush_s: float | None = 0.025,
        progress_s: float = 0.25,
        eta: EtaEstimator | None = None,
    ) -> None:
        self.ledger = ledger
        self.job_id = job_id
        self.attempt = attempt
        self.flush_s = flush_s
        self.progress_s = progress_s
        self._lock = threading.Lock()  # the pending text and counts (any thread)
        self._pending: list[str] = []
        self._first_at = 0.0  # wall time the oldest pending text was produced
        self._counts: dict[str, Any] | None = None  # the latest counts added, not yet used
        self._writing = threading.Lock()  # one batch of this attempt written at a time
        self._last_flush = 0.0
        self._last_progress = 0.0
        self._stats: dict[str, Any] = {}
        self._offset = 0  # bytes of output stored so far
        self.cancel_seen = False
        self._eta = eta if eta is not None else EtaEstimator()  # on the monotonic clock
        self.held = False  # a WorkerPublisher leaves the text alone while held
        self.on_first_text: Callable[[], None] | None = None  # called once, on the first text
        self.failure: Exception | None = None  # what a WorkerPublisher's batch of it met
        self._had_text = False

    def _event(self, data: dict[str, Any]) -> str:
        data["id"] = self.job_id
        data["attempt"] = self.attempt
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def progress(self, phase: str, **stats: Any) -> None:
        """Publish a phase change or progress at once, to the job's and the global stream."""
        with self._writing:
            self._stats = {"type": "progress", "phase": phase, **stats}
            event = self._event(dict(self._stats))
            cancel = self.ledger.publish(
                self.job_id, self.attempt, job_event=event, global_event=event
            )
            self.cancel_seen = self.cancel_seen or cancel
            self._last_progress = time.monotonic()

    def add(self, text: str, *, done: int, total: int, tps: float | None = None, **_: Any) -> bool:
        """Record a token's text (may be empty) and the counts after it; flushes when due
        (`flush_s`). True: the job is to be cancelled."""
        first = False
        with self._lock:
            if text:
                if not self._pending:
                    self._first_at = time.time()
                self._pending.append(text)
                first = not self._had_text
                self._had_text = True
            self._counts = {"done": done, "total": total, "tps": tps}
        if first and self.on_first_text is not None:
            self.on_first_text()  # the first text goes out at once, the rest in batches
        if self.flush_s is not None and time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()
        return self.cancel_seen

    def flush(self) -> bool:
        """Write what is pending now. Returns whether the job's cancel flag is set."""
        with self._writing:
            write = self.take()
            if write is not None:
                self.settle(write, self.ledger.publish_many([write])[0])
        return self.cancel_seen

    def take(self) -> PublishWrite | None:
        """The pending text (and the counts, when due) as one write; None if nothing is due.
        The caller holds `writing()` until it has settled the write."""
        with self._lock:
            text, self._pending = "".join(self._pending), []
            counts, self._counts = self._counts, None
            first_at = self._first_at
        stamp = time.monotonic()
        if counts is not None:
            self._stats = {"type": "progress", "phase": "generating", **counts}
            self._stats["eta"] = self._eta.update(int(counts["done"] or 0), int(counts["total"]))
        due = bool(self._stats) and stamp - self._last_progress >= self.progress_s
        self._last_flush = stamp
        if not text and not due:
            return None
        job_event = ""
        if text:
            # t0: when the batch's first text was produced; t: when it was written.
            job_event = self._event({**self._stats, "type": "tokens", "text": text,
                                     "t0": first_at, "t": time.time()})  # fmt: skip
        # SETRANGE at the known offset, not APPEND: if the server dies after storing a batch
        # but before replying, the client's retry rewrites the same bytes.
        return PublishWrite(
            self.job_id,
            self.attempt,
            offset=self._offset,
            text=text.encode(),
            job_event=job_event,
            completion_tokens=self._stats.get("done", 0) if due else None,
            tokens_per_second=self._stats.get("tps") if due else None,
            global_event=self._event(dict(self._stats)) if due else "",
        )

    def settle(self, write: PublishWrite, outcome: bool | Exception) -> None:
        """Record a written batch: its bytes, its counts, the cancel flag; or raise its error."""
        if isinstance(outcome, Exception):
            raise outcome
        if write.global_event:
            self._last_progress = time.monotonic()
        self._offset += len(write.text)
        self.cancel_seen = self.cancel_seen or outcome

    def writing(self) -> threading.Lock:
        """Held while a batch of this attempt is being written."""
        return self._writing


class WorkerPublisher:
    """One thread that writes the batches of all of a worker's running attempts.

    Every `flush_s` it takes each attempt's pending text and counts and writes them all in
    one pipelined round trip (each still its own fenced script): with 32 jobs streaming
    that is ~40 round trips a second for the worker, not ~40 for each job, and no thread
    wakes up for each token. The first text of an attempt goes out at once.

    What a write reports reaches the attempt through `stop` (the event its job's stop
    signal watches): a cancel asked for sets it; a refused write (the attempt was
    superseded) or a lost server also keeps the error, which `close()` raises.
    """

    def __init__(self, ledger: Ledger, flush_s: float = 0.025, progress_s: float = 0.25) -> None:
        self.ledger = ledger
        self.flush_s = flush_s
        self.progress_s = progress_s
        self._cond = threading.Condition()
        self._streams: dict[StreamPublisher, threading.Event] = {}
        self._urgent = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def open(self, job_id: str, attempt: int, stop: threading.Event) -> StreamPublisher:
        """A held stream for the attempt (`release()` it once the attempt is running)."""
        stream = StreamPublisher(
            self.ledger, job_id, attempt, flush_s=None, progress_s=self.progress_s
        )
        stream.held = True
        stream.on_first_text = self._wake
        with self._cond:
            self._streams[stream] = stop
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="promptspool-publisher", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return stream

    def release(self, stream: StreamPublisher) -> None:
        """Let the thread write the stream's text from now on (its attempt is running)."""
        stream.held = False
        self._wake()

    def close(self, stream: StreamPublisher) -> None:
        """Write what is left of the attempt's text now and let it go; raises the error a
        batch of it met (AttemptSuperseded, a lost server), or the final write's own."""
        with self._cond:
            self._streams.pop(stream, None)
        stream.flush()  # after any batch of it the thread is writing
        if stream.failure is not None:
            raise stream.failure

    def discard(self, stream: StreamPublisher) -> None:
        """Let the stream go without writing what is left (its attempt is lost anyway)."""
        with self._cond:
            self._streams.pop(stream, None)

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _wake(self) -> None:
        with self._cond:
            self._urgent = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._streams:
                    self._cond.wait()
                if self._closed:
                    return
                if not self._urgent:
                    self._cond.wait(self.flush_s)
                self._urgent = False
                streams = [(s, stop) for s, stop in self._streams.items() if not s.held]
            if streams:
                self._write(streams)

    def _write(self, streams: list[tuple[StreamPublisher, threading.Event]]) -> None:
        """One round trip for every stream with something due (one being closed is skipped)."""
        held: list[tuple[StreamPublisher, threading.Event, PublishWrite]] = []
        try:
            for stream, stop in streams:
                if not stream.writing().acquire(blocking=False):
                    continue  # its own thread is writing it (a phase change, its last batch)
                write = stream.take()
                if write is None:
                    stream.writing().release()
                    continue
                held.append((stream, stop, write))
            if not held:
                return
            try:
                outcomes = self.ledger.publish_many([write for _, _, write in held])
            except Exception as exc:  # the server is gone: every one of these stops
                outcomes = [exc] * len(held)
            for (stream, stop, write), outcome in zip(held, outcomes, strict=True):
                try:
                    stream.settle(write, outcome)
                except Exception as exc:
                    log.warning("job %s attempt %s: writing its text failed: %s: %s",
                                stream.job_id, stream.attempt, type(exc).__name__, exc)  # fmt: skip
                    stream.failure = stream.failure or exc
                    stop.set()
                    continue
                if stream.cancel_seen:
                    stop.set()
        finally:
            for stream, _, _ in held:
                stream.writing().release()
