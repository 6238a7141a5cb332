"""A job that waits for its next try (a remote endpoint's rate limit) in the ledger."""

from __future__ import annotations

import time

from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.ledger import Ledger
from worker.testing.harness import Queue

REASON = "endpoint 'lab' (http://lab/v1): rate limited (429): slow down"


def running_job(ledger: Ledger) -> str:
    [job_id] = ledger.create([JobSpec(prompt="hi", model="lab/m")])
    assert ledger.claim(job_id, 1, "w1") == "ok"
    ledger.mark_running(job_id, 1, 3)
    return job_id


def test_a_deferred_job_waits_outside_the_queue_until_it_is_due(queue: Queue) -> None:
    ledger = Ledger(queue.redis)
    job_id = running_job(ledger)
    due = time.time() + 100
    assert ledger.defer(job_id, 1, due, REASON, 8) == "deferred"
    job = ledger.get(job_id)
    assert (job.state, job.attempt, job.tries, job.max_tries) == (JobState.queued, 2, 1, 8)
    assert job.retry_at == round(due, 3) and job.queue_position is None
    assert job.attempts[0].state is JobState.failed and job.attempts[0].error == REASON
    assert job.waiting_note(at=due - 12) == f"{REASON}, next try in 12 s (try 2 of 8)"
    assert ledger.running_ids() == []
    assert ledger.next_due() == round(due, 3)
    assert ledger.release_due(at=due - 1) == [], "not before it is due"
    assert ledger.release_due(at=due) == [(job_id, 2)]
    job = ledger.get(job_id)
    assert job.state is JobState.queued and job.retry_at is None and job.waiting_note() is None
    assert job.queue_position == 1
    assert ledger.release_due(at=due + 1) == [], "released once"
    assert ledger.claim(job_id, 2, "w2") == "ok"


def test_the_last_try_fails_the_job_with_the_endpoints_reason(queue: Queue) -> None:
    ledger = Ledger(queue.redis)
    job_id = running_job(ledger)
    assert ledger.defer(job_id, 1, time.time(), REASON, 2) == "deferred"
    assert ledger.release_due() == [(job_id, 2)]
    assert ledger.claim(job_id, 2, "w1") == "ok"
    assert ledger.defer(job_id, 2, time.time(), REASON, 2) == "failed"
    job = ledger.get(job_id)
    assert job.state is JobState.failed
    assert job.error == f"{REASON} (gave up after 2 tries)"
    assert [a.state for a in job.attempts] == [JobState.failed, JobState.failed]
    # A retry by the user starts counting again.
    assert ledger.retry(job_id) == 3
    assert ledger.get(job_id).tries == 0


def test_a_cancel_ends_a_waiting_job_at_once_and_sticks_through_a_deferral(
    queue: Queue,
) -> None:
    ledger = Ledger(queue.redis)
    job_id = running_job(ledger)
    assert ledger.defer(job_id, 1, time.time() + 100, REASON, 8) == "deferred"
    assert ledger.cancel(job_id) == "cancelled"
    assert ledger.get(job_id).state is JobState.cancelled
    assert queue.redis.zcard(keys.SCHEDULED) == 0
    assert ledger.release_due(at=time.time() + 200) == []
    other = running_job(ledger)
    assert ledger.cancel(other) == "requested"
    assert ledger.defer(other, 1, time.time(), REASON, 8) == "cancelled"
    assert ledger.get(other).state is JobState.cancelled


def test_a_superseded_attempt_cannot_defer(queue: Queue) -> None:
    ledger = Ledger(queue.redis)
    job_id = running_job(ledger)
    assert ledger.mark_lost(job_id, 1, 3, "worker lost") == "requeued"
    assert ledger.defer(job_id, 1, time.time(), REASON, 8) == "stale"
    assert ledger.get(job_id).attempt == 2 and ledger.get(job_id).tries == 0
