"""Threads that block on the queue's event streams and hand what they read to the GUI as signals."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import redis
from PySide6.QtCore import QThread, Signal

from desktop.jobs.row import JobRow
from worker.jobs.job import Job
from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress, QueueUnavailable
from worker.queue.events import Event
from worker.queue.ledger import UnknownJobError
from worker.settings import Settings

log = logging.getLogger(__name__)

BLOCK_MS = 400  # how long one XREAD waits: also the longest a stop request waits
_ERRORS = (redis.RedisError, QueueUnavailable, OSError)


@dataclass
class Changes:
    """One read of the global stream, with what it changed fetched from the ledger."""

    events: list[Event]
    rows: list[JobRow] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    positions: dict[str, int] | None = None
    paused: bool | None = None
    workers_changed: bool = False

    @property
    def progress(self) -> list[Event]:
        return [e for e in self.events if e.type == "progress"]

    @property
    def states(self) -> list[Event]:
        return [e for e in self.events if e.type == "state"]

    @property
    def announcements(self) -> list[Event]:
        """News that is not about one job: an HTTP API listening, a batch that ended."""
        return [e for e in self.events if e.type in ("api", "batch")]


class _Reader(QThread):
    """A stoppable thread with its own JobClient and a reconnect backoff."""

    def __init__(self, address: QueueAddress, settings: Settings) -> None:
        super().__init__()
        self.address = address
        self.settings = settings
        self._stop = threading.Event()
        self._delay = 0.25  # the next reconnect backoff

    def stop(self) -> None:
        """Ask the thread to end; it does within BLOCK_MS (or at once while backing off)."""
        self._stop.set()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Connect, follow, and on a lost connection back off (0.25 s doubling to 5 s) and
        connect again, until stopped or `_follow` says it is done."""
        while not self.stopping():
            client: JobClient | None = None
            try:
                client = JobClient(self.address, self.settings)
                if not self._follow(client):
                    return
            except _ERRORS as exc:
                if self.stopping():
                    break
                self._lost(exc)
                self._stop.wait(self._delay)
                self._delay = min(self._delay * 2, 5.0)
            finally:
                if client is not None:
                    _close(client)

    def _connected(self) -> None:
        """Call once the first read after connecting has succeeded: the backoff restarts."""
        self._delay = 0.25

    def _follow(self, client: JobClient) -> bool:
        """Read until stopped (or raise on a lost connection); False: the thread is done."""
        raise NotImplementedError

    def _lost(self, exc: BaseException) -> None:
        """The connection is lost (or could not be made); the thread will try again."""


class QueueReader(_Reader):
    """Follows the global stream: a snapshot of every job on (re)connect, then its changes."""

    connection_changed = Signal(bool, str)  # reachable, why not
    snapshot = Signal(object, bool)  # list[JobRow], paused
    changed = Signal(object)  # Changes

    def __init__(self, address: QueueAddress, settings: Settings) -> None:
        super().__init__(address, settings)
        self._reachable: bool | None = None  # as last announced

    def _follow(self, client: JobClient) -> bool:
        last = client.last_event_id()
        rows = [JobRow.from_job(job) for job in client.list()]
        paused = client.is_paused()
        if self._reachable is not True:
            self._reachable = True
            self.connection_changed.emit(True, "")
        self.snapshot.emit(rows, paused)
        self._connected()
        while not self.stopping():
            events = client.read_global_events(last, block_ms=BLOCK_MS)
            if events:
                last = events[-1].id
                self.changed.emit(self._changes(client, events))
        return True

    def _lost(self, exc: BaseException) -> None:
        log.info("queue unreachable: %s", exc)
        if self._reachable is not False:
            self._reachable = False
            self.connection_changed.emit(False, _reason(exc))

    @staticmethod
    def _changes(client: JobClient, events: list[Event]) -> Changes:
        changes = Changes(events)
        changed: dict[str, None] = {}
        for event in events:
            if event.type in ("state", "cancel_requested"):
                changed[event.job_id] = None
            elif event.type == "forgotten":
                changes.removed.append(event.job_id)
            elif event.type == "queue":
                changes.paused = event.data.get("state") == "paused"
            elif event.type == "worker":
                changes.workers_changed = True
        if changed:
            changes.rows = [JobRow.from_job(job) for job in client.get_many(changed)]
        if changed or changes.removed:
            changes.positions = client.queue_positions()
        return changes


class JobFollower(_Reader):
    """Follows one job's stream: its history first (as text per attempt), then live events."""

    loaded = Signal(object, object)  # Job, dict[int, str] (text streamed per attempt)
    events = Signal(str, object)  # job id, list[Event]
    job_changed = Signal(object)  # Job (after a state change)
    gone = Signal(str)  # job id (forgotten)

    def __init__(self, address: QueueAddress, settings: Settings, job_id: str) -> None:
        super().__init__(address, settings)
        self.job_id = job_id
        self._last: str | None = None  # the last event read (None: history not loaded yet)

    def _follow(self, client: JobClient) -> bool:
        try:
            if self._last is None:
                self._last = self._load(client)
                if self._last is None:
                    return False
            self._connected()
            while not self.stopping():
                batch = client.read_job_events(self.job_id, self._last, block_ms=BLOCK_MS)
                if not batch or self.stopping():
                    continue
                self._last = batch[-1].id
                self.events.emit(self.job_id, batch)
                if any(e.type in ("state", "cancel_requested") for e in batch):
                    self.job_changed.emit(client.get(self.job_id))
        except UnknownJobError:
            self.gone.emit(self.job_id)
            return False
        return True

    def _lost(self, exc: BaseException) -> None:
        log.info("following job %s: %s", self.job_id, exc)

    def _load(self, client: JobClient) -> str | None:
        """Replay the stream (text per attempt), then read the job; the last event id read."""
        texts: dict[int, list[str]] = {}
        last = "0-0"
        while not self.stopping():
            batch = client.read_job_events(self.job_id, last)
            if not batch:
                break
            last = batch[-1].id
            for event in batch:
                if event.type == "tokens":
                    texts.setdefault(event.attempt, []).append(str(event.data.get("text", "")))
        if self.stopping():
            return None
        job: Job = client.get(self.job_id)
        self.loaded.emit(job, {n: "".join(parts) for n, parts in texts.items()})
        return last


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _close(client: JobClient) -> None:
    try:
        client.close()
    except _ERRORS as exc:
        log.debug("closing a reader's client: %s", exc)
