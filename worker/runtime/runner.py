"""Runs one job attempt on the engine: claim, load, stream, finish — or hand back on shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.engine.api import (
    Cancelled,
    EngineError,
    JobEngine,
    LoadOptions,
    RetryLater,
    StopSignal,
)
from worker.jobs.job import Job, JobState
from worker.queue import keys
from worker.queue.connection import is_queue_outage
from worker.queue.ledger import AttemptSuperseded, Ledger
from worker.queue.publisher import StreamPublisher, WorkerPublisher
from worker.remote.backoff import full_jitter
from worker.runtime.cancels import CancelRegistry
from worker.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "the worker was shut down; the job was queued again"
OUTAGE_REASON = "the queue server stopped answering during this attempt; the job was queued again"


@dataclass
class JobRunner:
    """Everything a worker needs to run jobs; one per worker process."""

    settings: Settings
    client: redis.Redis
    engine: JobEngine
    worker_id: str
    cancels: CancelRegistry
    shutting_down: threading.Event = field(default_factory=threading.Event)
    # Told when a job starts waiting for its next try (a remote worker's retry timer).
    on_deferred: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.client)
        # One writer for the text of all of this worker's running jobs (see WorkerPublisher).
        self.publisher = WorkerPublisher(self.ledger, self.settings.stream_flush_ms / 1000)

    def close(self) -> None:
        """Stop the publisher's thread (once no job runs)."""
        self.publisher.stop()

    @staticmethod
    def load_options_for(settings: Settings) -> LoadOptions:
        s = settings
        return LoadOptions(s.n_gpu_layers, s.n_ctx, s.n_batch, s.n_threads, s.flash_attn)

    def load_options(self) -> LoadOptions:
        return self.load_options_for(self.settings)

    def run(self, job_id: str, attempt: int) -> tuple[str, int | None]:
        """Run the attempt if it is still due. Returns (outcome, attempt to requeue or None).

        If the queue server goes away (killed, restarting, disk full) during the attempt,
        generation stops and the attempt is handed back once the server answers again:
        the job never stays 'running' under a worker whose heartbeat is still alive. If the
        attempt was superseded meanwhile (this worker was judged lost: paused, asleep, cut
        off), its next write is refused and it stops there, changing nothing.
        """
        try:
            return self._run(job_id, attempt)
        except AttemptSuperseded:
            log.warning(
                "job %s attempt %s was superseded (this worker was judged lost while it was "
                "paused or cut off, and the job went on without it); its work is dropped",
                job_id, attempt,
            )  # fmt: skip
            return "superseded", None
        except Exception as exc:
            if not is_queue_outage(exc):
                raise
            return self._settle_after_outage(job_id, attempt, exc)

    def _run(self, job_id: str, attempt: int) -> tuple[str, int | None]:
        if self.client.exists(keys.PAUSED):  # the job stays queued; resume() sends it again
            log.info("job %s attempt %s not run: the queue is paused", job_id, attempt)
            return "paused", None
        claim = self.ledger.claim(job_id, attempt, self.worker_id)
        if claim != "ok":
            log.info("job %s attempt %s not run: %s", job_id, attempt, claim)
            return claim, None
        job = self.ledger.get(job_id, with_output=False)
        event = self.cancels.register(job_id)
        if job.cancel_requested:
            event.set()
        try:
            return self._attempt(job, attempt, event)
        finally:
            self.cancels.unregister(job_id)

    def _attempt(self, job: Job, attempt: int, event: threading.Event) -> tuple[str, int | None]:
        """Load the model, generate and stream, then record how the attempt ended."""
        job_id, spec = job.id, job.spec
        timeout = spec.timeout or self.settings.job_timeout
        stop = _ShutdownAwareStop(
            event, time.monotonic() + timeout, f"timed out after {timeout:g} s", self.shutting_down
        )
        stream = self.publisher.open(job_id, attempt, event)
        try:
            return self._generate(job, attempt, stop, stream)
        finally:
            self.publisher.discard(stream)  # closed already, unless the attempt was lost

    def _generate(
        self, job: Job, attempt: int, stop: _ShutdownAwareStop,
        stream: StreamPublisher,
    ) -> tuple[str, int | None]:  # fmt: skip
        job_id, spec, event = job.id, job.spec, stop.event
        stats: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "tps": None}
        marked_running = False
        warm = self.engine.model_path  # the model loaded before: none or another means a load

        def on_progress(phase: str, done: int, total: int, **extra: Any) -> None:
            nonlocal marked_running
            if not marked_running and phase in ("prompt", "generating"):
                if phase == "prompt" and done == 0 and self.engine.model_path != warm:
                    # Just loaded: its weights page in while the first chunk is read, which
                    # on a slow disk or a small machine takes long. Still loading, as shown.
                    stream.progress("loading", done=0, total=1, model=spec.model)
                    return
                marked_running = True
                stats["prompt_tokens"] = total
                self.ledger.mark_running(job_id, attempt, total)
            stream.progress(phase, done=done, total=total, **extra)
            if marked_running and stream.held:
                self.publisher.release(stream)  # its text may go out now, after 'running'

        def on_text(text: str, *, done: int, total: int, tps: float | None) -> bool:
            """On the engine's thread, for each token: record it, write nothing."""
            stats["completion_tokens"], stats["tps"] = done, tps
            return stream.add(text, done=done, total=total, tps=tps)

        try:
            stream.progress("loading", done=0, total=1, model=spec.model)
            # generate() loads the model when needed under the job's stop signal: a cancel or
            # the time limit stops a long load too (a separate ensure_model() would not).
            result = self.engine.generate(spec, stop, on_progress, on_text)
        except Cancelled as exc:
            self.publisher.close(stream)  # raises what stopped it, if its writes did
            return self._end_stopped(job_id, attempt, exc.reason, stats)
        except RetryLater as exc:
            self.publisher.close(stream)
            return self._defer(job, attempt, exc)
        except (EngineError, ValueError) as exc:
            self.publisher.close(stream)
            self._finish(job_id, attempt, JobState.failed, str(exc), stats)
            return "failed", None
        except AttemptSuperseded:
            event.set()  # an engine running jobs on its own thread drops this one
            raise  # its stream is let go unwritten (_attempt)
        except Exception as exc:
            if is_queue_outage(exc):
                event.set()  # an engine running jobs on its own thread drops this one
                raise  # not the job's fault: run() hands it back once the server is back
            log.exception("job %s failed unexpectedly", job_id)
            self.publisher.close(stream)
            self._finish(job_id, attempt, JobState.failed, f"internal error: {exc!r}", stats)
            return "failed", None
        self.publisher.close(stream)
        stats["prompt_tokens"], stats["completion_tokens"] = (
            result.prompt_tokens,
            result.completion_tokens,
        )
        stats["tps"] = result.tokens_per_second
        stats["finish_reason"] = result.finish_reason
        self._finish(job_id, attempt, JobState.succeeded, None, stats)
        return "succeeded", None

    def _defer(self, job: Job, attempt: int, exc: RetryLater) -> tuple[str, int | None]:
        """The endpoint asked us to come back later: the job waits for its next try in the
        ledger, holding no worker, for what the endpoint asked (Retry-After), else a backoff
        with full jitter; after remote_max_tries tries it fails with the endpoint's message."""
        # `job.tries` failed before this one (read when it was claimed): the next is + 2.
        job_id = job.id
        delay = exc.retry_after if exc.retry_after is not None else full_jitter(job.tries + 2)
        tries_allowed = exc.max_tries or self.settings.remote_max_tries
        result = self.ledger.defer(job_id, attempt, time.time() + delay, exc.reason, tries_allowed)
        log.info("job %s attempt %s: %s; %s (next try in %.1f s)", job_id, attempt, exc.reason,
                 result, delay)  # fmt: skip
        if result == "deferred" and self.on_deferred is not None:
            self.on_deferred()
        return result, None

    def _settle_after_outage(
        self, job_id: str, attempt: int, exc: BaseException
    ) -> tuple[str, int | None]:
        """Wait (with backoff) for the server, then hand the attempt back or end it cancelled."""
        log.warning(
            "job %s attempt %s: the queue server stopped answering (%s: %s); "
            "the job goes back to the queue when it answers again",
            job_id, attempt, type(exc).__name__, exc,
        )  # fmt: skip
        delay = 0.05
        while True:
            try:
                return self._hand_back(job_id, attempt)
            except Exception as again:
                if not is_queue_outage(again):
                    raise
            if self.shutting_down.wait(delay):
                log.warning(
                    "job %s attempt %s: shutting down before the queue server came back; "
                    "another worker's reaper will queue it again",
                    job_id, attempt,
                )  # fmt: skip
                return "abandoned", None
            delay = min(delay * 2, 2.0)

    def _hand_back(self, job_id: str, attempt: int) -> tuple[str, int | None]:
        """Queue the attempt again, uncounted; a cancel asked meanwhile ends it cancelled."""
        result = self.ledger.mark_lost(
            job_id, attempt, self.settings.max_attempts, OUTAGE_REASON, counts=False
        )
        log.info("job %s attempt %s after the queue outage: %s", job_id, attempt, result)
        return ("handed back", attempt + 1) if result == "requeued" else (result, None)

    def _end_stopped(
        self, job_id: str, attempt: int, reason: str, stats: dict[str, Any]
    ) -> tuple[str, int | None]:
        if reason == "shutdown":
            result = self.ledger.mark_lost(
                job_id, attempt, self.settings.max_attempts, SHUTDOWN_REASON, counts=False
            )
            return "handed back", attempt + 1 if result == "requeued" else None
        if reason == "cancelled":
            self._finish(job_id, attempt, JobState.cancelled, "cancelled by the user", stats)
            return "cancelled", None
        self._finish(job_id, attempt, JobState.failed, reason, stats)
        return "failed", None

    def _finish(
        self, job_id: str, attempt: int, state: JobState, error: str | None, stats: dict[str, Any]
    ) -> None:
        self.ledger.finish(
            job_id,
            attempt,
            state,
            error=error,
            prompt_tokens=stats["prompt_tokens"],
            completion_tokens=stats["completion_tokens"],
            tokens_per_second=stats["tps"],
            finish_reason=stats.get("finish_reason"),
        )


class _ShutdownAwareStop(StopSignal):
    """A StopSignal that also fires when the worker shuts down (the job is handed back)."""

    def __init__(
        self,
        event: threading.Event,
        deadline: float,
        timeout_reason: str,
        shutdown: threading.Event,
    ) -> None:
        super().__init__(event, deadline, timeout_reason)
        self.shutdown = shutdown

    def reason(self) -> str | None:
        if self.shutdown.is_set():
            return "shutdown"
        return super().reason()
