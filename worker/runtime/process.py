"""`promptspool worker`: a Celery worker with the engine, heartbeat, cancel listener and reaper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from celery import Celery, signals

from worker.engine.api import JobEngine
from worker.engine.batch_engine import BatchEngine
from worker.engine.capacity import parallel_jobs
from worker.jobs.job import Job
from worker.queue.celery_app import (
    QUEUE_NAME,
    REMOTE_QUEUE,
    TASK_NAME,
    create_app,
    send_job,
    send_jobs,
)
from worker.queue.connection import QueueAddress, is_queue_outage
from worker.queue.heartbeats import new_worker_id
from worker.queue.ledger import Ledger
from worker.remote.engine import RemoteEngine
from worker.runtime.reaper import Reaper
from worker.runtime.runner import JobRunner
from worker.runtime.services import WorkerServices
from worker.settings import Settings, SettingsFile

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Wires one worker process: the Celery app, its task, the engine and the services.

    A local worker runs the queue's llama.cpp jobs, batched on one model; a remote worker
    (`remote=True`) runs the jobs of remote endpoints from their own queue, many at once on
    an I/O pool of threads, and releases the jobs that wait for their next try on time.
    """

    def __init__(self, settings: Settings, address: QueueAddress, *, remote: bool = False) -> None:
        self.settings = settings
        self.address = address
        self.remote = remote
        self.worker_id = new_worker_id()
        self.client = address.connect()
        self.app: Celery = create_app(address.celery_url, longest_job_s=settings.job_timeout)
        self.ledger = Ledger(self.client)
        self.engine: JobEngine
        if remote:
            self.slots = settings.remote_slots
            self.engine = RemoteEngine(SettingsFile(settings).current, self.client)
        else:
            # One task thread per batch slot: each hands its job to the shared engine.
            s = settings
            self.slots = parallel_jobs(s.parallel_jobs, s.model, s.n_ctx, s.n_gpu_layers)
            self.batch = BatchEngine(
                JobRunner.load_options_for(settings),
                self.slots,
                backend_sampling=settings.backend_sampling,
            )
            self.engine = self.batch
        self.app.conf.worker_concurrency = self.slots
        reaper = Reaper(
            self.client,
            self.worker_id,
            heartbeat_ttl=settings.heartbeat_ttl,
            max_attempts=settings.max_attempts,
            requeue=self.requeue,
            resend=self.resend,
            retention_days=settings.retention_days,
        )
        self.services = WorkerServices(reaper, info=self.info, retry_timer=remote)
        self.runner = JobRunner(
            settings, self.client, self.engine, self.worker_id, self.services.cancels,
            on_deferred=self.services.wake_retry_timer,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._current: list[str] = []  # running jobs, oldest first
        self.app.task(name=TASK_NAME, bind=False)(self.run_job)

    def run_job(self, job_id: str, attempt: int) -> str:
        with self._lock:
            self._current.append(job_id)
        try:
            outcome, requeue = self.runner.run(job_id, attempt)
        finally:
            with self._lock:
                self._current.remove(job_id)
        if requeue is not None:
            try:
                self.requeue(job_id, requeue)
            except Exception as exc:
                if not is_queue_outage(exc):
                    raise
                # The ledger has the job queued; the reaper's sweep sends its message.
                log.warning("job %s: could not send its message (%s); it will be resent",
                            job_id, exc)  # fmt: skip
        return outcome

    @property
    def queue(self) -> str:
        return REMOTE_QUEUE if self.remote else QUEUE_NAME

    def requeue(self, job_id: str, attempt: int) -> None:
        spec = self.ledger.get(job_id, with_output=False).spec
        send_job(self.app, job_id, attempt, spec, resumed=True)

    def resend(self, jobs: Sequence[Job]) -> None:
        """Send the current attempt's message for each job (one producer for all)."""
        send_jobs(self.app, ((job.id, job.attempt, job.spec, False) for job in jobs))

    def info(self) -> dict[str, Any]:
        model = self.engine.model_path
        info: dict[str, Any] = {
            "model": str(model) if model else None,
            "job": self._current[0] if self._current else None,
            "jobs": list(self._current),
            "slots": self.slots,
            "queue": self.queue,
            "gpu": asdict(self.engine.gpu) | {"active": self.engine.gpu.active},
        }
        if not self.remote:
            info["batch"] = self.batch.stats.as_dict()
        return info

    def on_ready(self, **_: Any) -> None:
        self.services.start()
        log.info("worker %s ready", self.worker_id)

    def on_shutting_down(self, **_: Any) -> None:
        self.runner.shutting_down.set()

    def on_shutdown(self, **_: Any) -> None:
        self.services.stop()
        self.engine.close()
        self.runner.close()

    def main(self, loglevel: str = "INFO") -> None:
        signals.worker_ready.connect(self.on_ready, weak=False)
        signals.worker_shutting_down.connect(self.on_shutting_down, weak=False)
        signals.worker_shutdown.connect(self.on_shutdown, weak=False)
        self.app.worker_main(
            [
                "worker",
                f"--hostname=promptspool-{self.worker_id}@%h",
                f"--loglevel={loglevel}",
                f"--queues={self.queue}",
                "--without-mingle",
                "--without-gossip",
                "--task-events",
            ]
        )


def run_worker(
    settings: Settings, url: str | None = None, loglevel: str = "INFO", *, remote: bool = False
) -> None:
    WorkerRuntime(settings, QueueAddress.resolve(settings, url), remote=remote).main(loglevel)
