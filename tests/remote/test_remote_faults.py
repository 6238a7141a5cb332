"""A remote worker that dies or stops mid-answer: the job runs again elsewhere, once."""

from __future__ import annotations

import pytest

from tests.remote.conftest import Remote
from tests.remote.test_remote_jobs import remote_job
from worker.jobs.job import JobState
from worker.testing.harness import Queue, WorkerHandle, paused, wait_until, worker_info

pytestmark = pytest.mark.slow


def running_on(local: Queue, job_id: str) -> WorkerHandle:
    """The worker whose attempt 1 of the job is streaming."""
    local.wait_tokens(job_id, attempt=1, timeout=90)
    owner = local.client.get(job_id, with_output=False).worker
    return next(w for w in local.workers if w.worker_id == owner)


def assert_ran_once_more(local: Queue, job_id: str, lost: WorkerHandle) -> None:
    local.wait_state(job_id, "succeeded", timeout=180)
    job = local.client.get(job_id)
    assert job.state is JobState.succeeded and job.output
    assert [a.state for a in job.attempts] == [JobState.failed, JobState.succeeded]
    assert job.attempts[0].worker == lost.worker_id
    assert job.worker != lost.worker_id
    assert local.streamed_text(job_id, attempt=2) == job.output


def test_a_killed_remote_worker_s_job_runs_again(local: Queue, remote: Remote) -> None:
    local.start_worker(remote=True)
    job_id = remote_job(local, "remote/slow", max_tokens=160)
    victim = running_on(local, job_id)
    victim.kill()
    assert_ran_once_more(local, job_id, victim)


def test_a_paused_remote_worker_changes_nothing_when_it_comes_back(
    local: Queue, remote: Remote
) -> None:
    local.start_worker(remote=True)
    job_id = remote_job(local, "remote/slow", max_tokens=160)
    sleeper = running_on(local, job_id)
    with paused(sleeper.process.pid):
        assert_ran_once_more(local, job_id, sleeper)
        done = local.client.get(job_id)
    # Back: its attempt was superseded; its next write is refused and it lets the job go.
    wait_until(
        lambda: (worker_info(local.redis, sleeper.worker_id) or {}).get("jobs") == [],
        timeout=60, what="the resumed worker to let its stale attempt go",
    )  # fmt: skip
    after = local.client.get(job_id)
    assert after.state is JobState.succeeded
    assert (after.output, after.attempt, len(after.attempts)) == (
        done.output, done.attempt, len(done.attempts),
    )  # fmt: skip
