"""JobClient: submit, inspect, cancel, retry and follow jobs — the API the CLI and the app use."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from celery import Celery

from worker import keys
from worker.celery_app import create_app, send_job
from worker.connection import QueueAddress
from worker.events import Event, read_events
from worker.jobs import Job, JobState
from worker.ledger import Ledger
from worker.redisio import as_text, last_stream_id
from worker.settings import Settings, load_settings
from worker.spec import JobSpec, check_model_file


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

    def submit(self, specs: Sequence[JobSpec]) -> list[str]:
        """Validate each distinct model once, record the jobs, then send their messages."""
        checked: dict[str, str] = {}
        resolved = []
        for spec in specs:
            if spec.model not in checked:
                checked[spec.model] = str(check_model_file(spec.model))
            resolved.append(spec.model_copy(update={"model": checked[spec.model]}))
        ids = self.ledger.create(resolved)
        with self.app.producer_or_acquire() as producer:
            for job_id, spec in zip(ids, resolved, strict=True):
                send_job(self.app, job_id, 1, spec.priority, producer=producer)
        return ids

    def cancel(self, job_id: str) -> str:
        return self.ledger.cancel(job_id)

    def retry(self, job_id: str) -> int:
        attempt = self.ledger.retry(job_id)
        send_job(
            self.app, job_id, attempt, self.ledger.get(job_id, with_output=False).spec.priority
        )
        return attempt

    def forget(self, job_id: str) -> None:
        self.ledger.forget(job_id)

    # --- reads ------------------------------------------------------------------------

    def get(self, job_id: str, *, with_output: bool = True) -> Job:
        return self.ledger.get(job_id, with_output=with_output)

    def list(self, states: Iterable[JobState] | None = None) -> builtins.list[Job]:
        return self.ledger.all(states)

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
        remaining_ms = None if timeout is None else int(timeout * 1000)
        while not job.state.finished:
            block = 1000 if remaining_ms is None else max(1, min(1000, remaining_ms))
            for event in read_events(self.redis, {stream: last}, block_ms=block):
                last = event.id
            if remaining_ms is not None:
                remaining_ms -= block
                if remaining_ms <= 0:
                    raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            job = self.get(job_id, with_output=False)
        return self.get(job_id)
