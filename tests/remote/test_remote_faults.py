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


def test_a_remote_that_stops_mid_answer_is_tried_again_when_it_comes_back(
    local: Queue, remote: Remote
) -> None:
    """The remote's API stopped (SIGSTOP: a sleeping laptop, a stalled machine) while it
    streams: the silence ends that try after remote_read_timeout, the job waits for its next
    try, and once the remote is continued the job succeeds there."""
    local.configure(endpoints=[remote.endpoint()], remote_read_timeout=2, remote_max_tries=20)
    job_id = remote_job(local, "remote/slow", max_tokens=400, temperature=0.8)
    local.wait_tokens(job_id, attempt=1, timeout=90)
    with paused(remote.api.process.pid):
        wait_until(lambda: local.client.get(job_id).attempt >= 2, timeout=60,
                   what="the silent try to be given up")  # fmt: skip
        broken = local.client.get(job_id).attempts[0]
        assert broken.state is JobState.failed and broken.output, "its text so far is kept"
        assert broken.error is not None and "answer broke off" in broken.error
        assert "'remote'" in broken.error
    local.wait_state(job_id, "succeeded", timeout=180)
    job = local.client.get(job_id)
    assert job.attempts[0].state is JobState.failed
    assert job.attempts[-1].state is JobState.succeeded and job.output
    assert local.streamed_text(job_id, attempt=job.attempt) == job.output
