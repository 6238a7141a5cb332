"""The queue's janitor: requeues jobs of lost workers, resends lost messages, forgets old jobs.

Every worker runs one and watches the heartbeats each round; the one that holds the reaper
lock acts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from worker.jobs.job import Job, JobState
from worker.queue import keys
from worker.queue.celery_app import QUEUES, broker_queue_keys, queue_for
from worker.queue.heartbeats import HeartbeatWatch, forget_beats, read_beats
from worker.queue.ledger import Ledger
from worker.queue.replies import as_text

log = logging.getLogger(__name__)

LOST_REASON = "the worker running this job stopped (killed or crashed)"


class Reaper:
    """One worker's share of keeping the queue honest; `round()` runs every few seconds."""

    def __init__(
        self,
        client: redis.Redis,
        worker_id: str,
        *,
        heartbeat_ttl: float,
        max_attempts: int,
        requeue: Callable[[str, int], None],
        resend: Callable[[Sequence[Job]], None] | None = None,
        retention_days: float | None = None,
    ) -> None:
        self.redis = client
        self.ledger = Ledger(client)
        self.worker_id = worker_id
        self.ttl = heartbeat_ttl
        self.max_attempts = max_attempts
        self.requeue = requeue
        self.resend = resend
        self.retention_s = retention_days * 86_400 if retention_days else None
        self._pruned_at = 0.0
        self._orphans: set[tuple[str, int]] = set()  # queued with no message, last round
        self.watch = HeartbeatWatch(heartbeat_ttl, max_gap=2 * self.interval)

    @property
    def interval(self) -> float:
        """Seconds between rounds: a quarter of the heartbeat's lifetime, within 0.5 to 2 s."""
        return max(0.5, min(2.0, self.ttl / 4))

    def round(self) -> None:
        self.reap()
        self.release()
        self.sweep()
        self.prune()

    def release(self) -> int:
        """Put the jobs whose next try is due (a remote endpoint's rate limit or outage) back
        in the queue and send their messages; how many. Any worker may: each job is taken
        out of the waiting set atomically, by one of them."""
        released = self.ledger.release_due()
        if released and self.resend is not None:
            self.resend(self.ledger.get_many(job_id for job_id, _ in released))
        return len(released)

    def reap(self) -> list[str]:
        """Requeue (or fail, or end cancelled) the jobs of workers judged lost; their ids.

        Every worker watches the heartbeats of the others' running jobs each round (so a
        worker that takes the reaper lock over already has its view); only the lock's holder
        acts on them. A worker is judged lost by its heartbeat counter standing still in
        contact time (HeartbeatWatch), never by a lease that a stalled server let expire.
        """
        running = self._running_jobs()
        owners = {owner for _, owner, _ in running if owner != self.worker_id}
        lost = self.watch.observe(read_beats(self.redis, owners))
        if not self._hold_lock():
            return []
        handled = []
        for job_id, owner, attempt in running:
            if owner not in lost:
                continue
            result = self.ledger.mark_lost(job_id, attempt, self.max_attempts, LOST_REASON)
            log.warning("job %s attempt %s lost with worker %s: %s", job_id, attempt, owner, result)
            if result == "requeued":
                self.requeue(job_id, attempt + 1)
            handled.append(job_id)
        self._prune_workers(keep={owner for _, owner, _ in running})
        return handled

    def _running_jobs(self) -> list[tuple[str, str, int]]:
        """(job id, worker, attempt) of every loading or running job."""
        ids = self.ledger.running_ids()
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(keys.job(job_id), "worker", "attempt")
            rows = pipe.execute()
        jobs = []
        for job_id, (owner, attempt) in zip(ids, rows, strict=True):
            if owner and attempt:
                jobs.append((job_id, as_text(owner), int(as_text(attempt))))
        return jobs

    def _hold_lock(self) -> bool:
        """Take the reaper lock, or keep it (its lifetime starts again) if this worker has it."""
        ttl_ms = int(self.ttl * 1000)
        if self.redis.set(keys.REAPER_LOCK, self.worker_id, nx=True, px=ttl_ms):
            return True
        if as_text(self.redis.get(keys.REAPER_LOCK)) != self.worker_id:
            return False
        self.redis.pexpire(keys.REAPER_LOCK, ttl_ms)
        return True

    def sweep(self) -> int:
        """Send a message again for queued jobs when the broker holds none; returns how many.

        A job is recorded in the ledger before its message is sent, so a crash in between
        (a client, or a reaper between requeueing a job and sending its message) or a server
        that lost its last writes leaves a queued job with no message. When the ledger has
        queued jobs but the broker's queue is empty on two reaper rounds in a row, the
        messages of the (attempts of) jobs queued on both rounds are sent again; the second
        round keeps a client that has recorded jobs and is sending their messages right now
        from getting duplicates. A duplicate is harmless anyway: a job runs only from the
        state and attempt its message names. Paused queues are left alone (resume sends).
        Only the worker holding the reaper lock sweeps (it is called right after `reap`).
        """
        if self.resend is None:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.PAUSED)
            pipe.zcard(keys.QUEUE)
            for queue in QUEUES:  # local and remote jobs each have their own Celery queue
                for name in broker_queue_keys(queue):
                    pipe.llen(name)
            paused, queued, *lengths = pipe.execute()
        per_queue = len(lengths) // len(QUEUES)
        empty = {
            queue
            for n, queue in enumerate(QUEUES)
            if not any(lengths[n * per_queue : (n + 1) * per_queue])
        }
        if paused or not queued or not empty:
            self._orphans = set()
            return 0
        if as_text(self.redis.get(keys.REAPER_LOCK)) != self.worker_id:
            return 0
        candidates = [
            job
            for job in self.ledger.get_many(self.ledger.queue_positions())
            if job.state is JobState.queued and queue_for(job.spec) in empty
        ]
        seen_before, self._orphans = self._orphans, {(j.id, j.attempt) for j in candidates}
        jobs = [job for job in candidates if (job.id, job.attempt) in seen_before]
        if jobs:
            log.warning("%d queued jobs had no message in the broker; resending", len(jobs))
            self.resend(jobs)
        return len(jobs)

    def prune(self) -> int:
        """Forget jobs finished longer ago than the retention period (Settings.retention_days).

        Runs at most every minute (or every half retention period, if that is shorter), by
        the worker holding the reaper lock. Without a retention period, finished jobs are
        kept until the user clears them.
        """
        if self.retention_s is None:
            return 0
        now = time.time()
        if now - self._pruned_at < min(60.0, self.retention_s / 2):
            return 0
        if as_text(self.redis.get(keys.REAPER_LOCK)) != self.worker_id:
            return 0
        self._pruned_at = now
        forgotten = self.ledger.forget_finished_before(now - self.retention_s)
        if forgotten:
            log.info("forgot %d jobs finished more than %g days ago", len(forgotten),
                     self.retention_s / 86_400)  # fmt: skip
        return len(forgotten)

    def _prune_workers(self, keep: set[str]) -> None:
        """Forget workers whose heartbeat key is gone, and the counters of those that own no
        running job (`keep`: the owners of running jobs, still being watched)."""
        members: Any = self.redis.smembers(keys.WORKERS)
        alive = set()
        for raw in members:
            worker_id = as_text(raw)
            if self.redis.exists(keys.worker(worker_id)):
                alive.add(worker_id)
            else:
                self.redis.srem(keys.WORKERS, worker_id)
        counted: Any = self.redis.hkeys(keys.BEATS)
        forget_beats(self.redis, {as_text(w) for w in counted} - alive - keep)
