"""`promptspool worker`: a Celery worker with the engine, heartbeat, cancel listener and reaper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from celery import Celery, signals

from worker.engine.batch_engine import BatchEngine
from worker.engine.capacity import parallel_jobs
from worker.jobs.job import Job
from worker.queue.celery_app import TASK_NAME, create_app, send_job, send_jobs
from worker.queue.connection import QueueAddress, is_queue_outage
from worker.queue.heartbeats import new_worker_id
from worker.queue.ledger import Ledger
from worker.runtime.reaper import Reaper
from worker.runtime.runner import JobRunner
from worker.runtime.services import WorkerServices
from worker.settings import Settings

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Wires one worker process: the Celery app, its task, the engine and the services."""

    def __init__(self, settings: Settings, address: QueueAddress) -> None:
        self.settings = settings
        self.address = address
        self.worker_id = new_worker_id()
        self.client = address.connect()
        self.app: Celery = create_app(address.celery_url, longest_job_s=settings.job_timeout)
        self.ledger = Ledger(self.client)
        # One task thread per batch slot: each hands its job to the shared engine and waits.
        s = settings
        self.slots = parallel_jobs(s.parallel_jobs, s.model, s.n_ctx, s.n_gpu_layers)
        self.app.conf.worker_concurrency = self.slots
        self.engine = BatchEngine(
            JobRunner.load_options_for(settings),
            self.slots,
            backend_sampling=settings.backend_sampling,
        )
        reaper = Reaper(
            self.client,
            self.worker_id,
            heartbeat_ttl=settings.heartbeat_ttl,
            max_attempts=settings.max_attempts,
            requeue=self.requeue,
            resend=self.resend,
            retention_days=settings.retention_days,
        )
        self.services = WorkerServices(reaper, info=self.info)
        self.runner = JobRunner(
            settings, self.client, self.engine, self.worker_id, self.services.cancels
        )
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

    def requeue(self, job_id: str, attempt: int) -> None:
        spec = self.ledger.get(job_id, with_output=False).spec
        send_job(self.app, job_id, attempt, spec.priority, resumed=True)

    def resend(self, jobs: Sequence[Job]) -> None:
        """Send the current attempt's message for each job (one producer for all)."""
        send_jobs(self.app, ((job.id, job.attempt, job.spec.priority, False) for job in jobs))

    def info(self) -> dict[str, Any]:
        model = self.engine.model_path
        return {
            "model": str(model) if model else None,
            "job": self._current[0] if self._current else None,
            "jobs": list(self._current),
            "slots": self.slots,
            "batch": self.engine.stats.as_dict(),
            "gpu": asdict(self.engine.gpu) | {"active": self.engine.gpu.active},
        }

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
                "--without-mingle",
                "--without-gossip",
                "--task-events",
            ]
        )


def run_worker(settings: Settings, url: str | None = None, loglevel: str = "INFO") -> None:
    WorkerRuntime(settings, QueueAddress.resolve(settings, url)).main(loglevel)
