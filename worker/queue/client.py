"""JobClient: submit, inspect, cancel, retry and follow jobs — the API the CLI and the app use."""

from __future__ import annotations

import builtins
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from worker.jobs.job import Job, JobOrigin, JobState
from worker.jobs.spec import JobSpec
from worker.jobs.target import check_model
from worker.queue import keys
from worker.queue.celery_app import create_app, send_job, send_jobs
from worker.queue.connection import QueueAddress, is_queue_outage
from worker.queue.events import Event, announce, read_events
from worker.queue.heartbeats import read_beats
from worker.queue.ledger import Ledger
from worker.queue.replies import as_text, last_stream_id
from worker.settings import Settings, load_settings

if TYPE_CHECKING:  # made on first use (see `app`): reads and cancels need no Celery
    from celery import Celery

log = logging.getLogger(__name__)


class JobClient:
    """A connection to one queue. Cheap to create; not shared between threads."""

    def __init__(self, address: QueueAddress, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.address = address
        self.redis = address.connect()
        self.ledger = Ledger(self.redis)
        self._app: Celery | None = None

    @classmethod
    def connect(cls, settings: Settings | None = None, url: str | None = None) -> JobClient:
        """Connect to the configured queue; QueueUnavailable (one clear line) if none answers."""
        settings = settings or load_settings()
        return cls(QueueAddress.resolve(settings, url), settings)

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = create_app(self.address.celery_url, longest_job_s=self.settings.job_timeout)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
        self.redis.close()

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- actions ----------------------------------------------------------------------

    def submit(
        self,
        specs: Sequence[JobSpec],
        origins: Sequence[JobOrigin | None] | None = None,
        *,
        also: Callable[[Any, builtins.list[str]], None] | None = None,
        guard: Callable[[Any], None] | None = None,
    ) -> builtins.list[str]:
        """Validate each distinct model once, record the jobs, then send their messages.

        The jobs are recorded in one transaction, with `origins` and whatever `also` adds,
        if `guard` lets them (see Ledger.create): all or none. Once that returns they are
        acknowledged; if sending their messages then fails (the server died in between),
        a worker's reaper sends them again (Reaper.sweep), so they are not lost.
        """
        checked: dict[str, str] = {}
        resolved = []
        for spec in specs:
            if spec.model not in checked:
                checked[spec.model] = self._checked_model(spec.model)
            resolved.append(spec.model_copy(update={"model": checked[spec.model]}))
        ids = self.ledger.create(resolved, origins, also=also, guard=guard)
        try:
            send_jobs(self.app, [(i, 1, s, False) for i, s in zip(ids, resolved, strict=True)])
        except Exception as exc:
            if not is_queue_outage(exc):
                raise
            log.warning("%d jobs recorded; their messages will be resent (%s)", len(ids), exc)
        return ids

    def _checked_model(self, model: str) -> str:
        """A job's model as it is queued: `NAME/MODEL` of a configured endpoint as it is,
        else a sound GGUF file's resolved path (ValueError naming it and the reason)."""
        return check_model(model, self.settings.endpoint_names, deep=True)

    def cancel(self, job_id: str) -> str:
        return self.ledger.cancel(job_id)

    def retry(self, job_id: str) -> int:
        attempt = self.ledger.retry(job_id)
        send_job(self.app, job_id, attempt, self.ledger.get(job_id, with_output=False).spec)
        return attempt

    def forget(self, job_id: str) -> None:
        self.ledger.forget(job_id)

    def take_back_jobs(self, worker_id: str, reason: str) -> builtins.list[str]:
        """Queue again the running jobs of a worker that will not finish them (its supervisor
        killed it for not answering); each counts as a lost attempt. The ids taken back."""
        taken = []
        for job in self.ledger.get_many(self.ledger.running_ids()):
            if job.worker != worker_id:
                continue
            max_attempts = self.settings.max_attempts
            result = self.ledger.mark_lost(job.id, job.attempt, max_attempts, reason)
            if result == "requeued":
                send_job(self.app, job.id, job.attempt + 1, job.spec, resumed=True)
            taken.append(job.id)
        return taken

    def heartbeats(self, worker_ids: Iterable[str]) -> dict[str, int | None]:
        """The workers' heartbeat counters (see worker.queue.heartbeats)."""
        return read_beats(self.redis, worker_ids)

    # --- reads ------------------------------------------------------------------------

    def get(self, job_id: str, *, with_output: bool = True) -> Job:
        return self.ledger.get(job_id, with_output=with_output)

    def list(
        self, states: Iterable[JobState] | None = None, *, with_output: bool = False
    ) -> builtins.list[Job]:
        """Every job (in `states`, when given), in submission order."""
        return self.ledger.all(states, with_output=with_output)

    def get_many(self, job_ids: Iterable[str], *, with_output: bool = False) -> builtins.list[Job]:
        """Several jobs in one round trip, in the given order; unknown ids are skipped."""
        return self.ledger.get_many(job_ids, with_output=with_output)

    def queue_positions(self) -> dict[str, int]:
        """Every queued job's position (1 = next to run)."""
        return self.ledger.queue_positions()

    def last_event_id(self, job_id: str | None = None) -> str:
        """The id of the newest event on the job's stream (None: the global stream)."""
        stream = keys.GLOBAL_EVENTS if job_id is None else keys.events(job_id)
        return last_stream_id(self.redis, stream)

    def read_global_events(self, after: str, block_ms: int | None = None) -> builtins.list[Event]:
        """One read of the global stream after `after`; blocks up to block_ms (None: don't)."""
        return read_events(self.redis, {keys.GLOBAL_EVENTS: after}, block_ms=block_ms)

    def read_job_events(
        self, job_id: str, after: str, block_ms: int | None = None
    ) -> builtins.list[Event]:
        """One read of the job's stream after `after`; blocks up to block_ms (None: don't)."""
        return read_events(self.redis, {keys.events(job_id): after}, block_ms=block_ms)

    # --- pause ------------------------------------------------------------------------

    def is_paused(self) -> bool:
        return bool(self.redis.exists(keys.PAUSED))

    def pause(self) -> None:
        """Workers take no new jobs (running ones finish); queued jobs stay queued."""
        self.redis.set(keys.PAUSED, 1)
        self._announce_queue("paused")

    def resume(self) -> int:
        """Let workers take jobs again; returns how many queued jobs were sent again.

        A paused worker drops the messages it receives (the ledger keeps those jobs queued),
        so every queued job's message is sent again; a duplicate of one still in the broker
        is a no-op, since a job runs only from the state and attempt it was sent for.
        """
        self.redis.delete(keys.PAUSED)
        self._announce_queue("resumed")
        jobs = self.ledger.get_many(self.ledger.queue_positions())
        queued = [job for job in jobs if job.state is JobState.queued]
        send_jobs(self.app, ((job.id, job.attempt, job.spec, False) for job in queued))
        return len(queued)

    def _announce_queue(self, state: str) -> None:
        """A {"type": "queue", "state": "paused"|"resumed"} event on the global stream."""
        announce(self.redis, {"type": "queue", "state": state})

    def workers(self) -> builtins.list[dict[str, Any]]:
        """Live workers, from their heartbeats."""
        members: Any = self.redis.smembers(keys.WORKERS)
        ids = sorted(as_text(raw) for raw in members)
        values = self.redis.mget([keys.worker(w) for w in ids]) if ids else []
        return [json.loads(v) for v in values if v]

    def events(self, job_id: str, after: str = "0-0", block_ms: int = 1000) -> Iterator[Event]:
        """The job's events from `after` on (history first), then live ones; endless."""
        stream = keys.events(job_id)
        last = after
        while True:
            for event in read_events(self.redis, {stream: last}, block_ms=block_ms):
                last = event.id
                yield event

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job's current attempt ends; returns the finished job."""
        stream = keys.events(job_id)
        last = last_stream_id(self.redis, stream)
        job = self.get(job_id, with_output=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.state.finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            changed = False
            for event in read_events(self.redis, {stream: last}, block_ms=1000):
                last = event.id
                changed = changed or event.type == "state"
            if changed:
                job = self.get(job_id, with_output=False)
        return self.get(job_id)
