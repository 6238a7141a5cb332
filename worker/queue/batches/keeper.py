"""The batch keeper: a thread that settles batches as their jobs end, so that they complete and
announce it with nobody asking; and every unfinished batch at start and now and then."""

from __future__ import annotations

import logging
import threading
import time

from worker.queue.batches.book import BatchBook
from worker.queue.batches.store import UnknownBatch
from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress, QueueUnavailable, is_queue_outage
from worker.settings import Settings

log = logging.getLogger(__name__)

SWEEP_S = 15.0  # every unfinished batch is settled this often (its window, a missed event)
COOLDOWN_S = 0.5  # a batch is settled at most this often while its jobs end
RETRY_S = 1.0  # after the queue stopped answering


class BatchKeeper:
    """Follows the global event stream from its start; when a job of a batch ends, settles
    that batch (at most every COOLDOWN_S, the last event never left out). At start it
    settles every unfinished batch: a batch whose process was killed mid-way (still
    `validating`, or with jobs that ended meanwhile) moves on from there."""

    def __init__(
        self,
        address: QueueAddress,
        settings: Settings,
        *,
        sweep_s: float = SWEEP_S,
        cooldown_s: float = COOLDOWN_S,
    ) -> None:
        self.address = address
        self.settings = settings
        self.sweep_s = sweep_s
        self.cooldown_s = cooldown_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batch-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end and wait for it (a settle under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the batch keeper did not stop within %.0f s", timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:
                if not (isinstance(exc, QueueUnavailable) or is_queue_outage(exc)):
                    log.exception("batch keeper: unexpected error; starting over")
                elif not self._outage:  # logged once, not at every retry
                    log.warning("batch keeper: the queue is not answering (%s); retrying", exc)
                self._outage = True
                self._stop.wait(RETRY_S)

    def _follow(self) -> None:
        with JobClient(self.address, self.settings) as client:
            book = BatchBook(client)
            after = client.last_event_id()  # before the sweep: no event falls between
            book.settle_unfinished()
            self._outage = False
            next_sweep = time.monotonic() + self.sweep_s
            due: dict[str, float] = {}  # batch id -> when it may be settled next
            settled: dict[str, float] = {}  # batch id -> when it was settled last
            while not self._stop.is_set():
                wait = min([next_sweep, *due.values()]) - time.monotonic()
                block_ms = max(1, int(min(wait, 1.0) * 1000))
                ended = []
                for event in client.read_global_events(after, block_ms=block_ms):
                    after = event.id
                    if event.state is not None and event.state.finished:
                        ended.append(event.job_id)
                now = time.monotonic()
                for batch_id in book.store.batch_of(ended) if ended else ():
                    due.setdefault(batch_id, settled.get(batch_id, 0.0) + self.cooldown_s)
                for batch_id in [b for b, when in due.items() if when <= now]:
                    del due[batch_id]
                    settled[batch_id] = now
                    try:
                        book.settle(batch_id)
                    except UnknownBatch:
                        continue
                settled = {b: t for b, t in settled.items() if now - t < self.cooldown_s}
                if now >= next_sweep:
                    book.settle_unfinished()
                    next_sweep = now + self.sweep_s
