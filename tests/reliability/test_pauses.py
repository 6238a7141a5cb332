"""Processes that pause instead of dying: a worker stopped (SIGSTOP) past its heartbeat, a
stalled server, a laptop that sleeps with a job running. Each job still runs exactly once.

A stopped process is continued (SIGCONT) within the test, as a machine wakes; what it does
then is part of what is checked.
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

from tests.reliability.support import spec, succeeded_once
from worker.hosting.children import HUNG_REASON
from worker.jobs.job import JobState
from worker.queue import keys
from worker.runtime.reaper import LOST_REASON
from worker.testing.harness import (
    Queue,
    ServeProcess,
    let_time_pass,
    paused,
    wait_for_event,
    wait_pid_gone,
    wait_until,
    worker_info,
)


def dropped_by(queue: Queue, worker_id: str, job_id: str) -> bool:
    """The worker is back (beating) and no longer counts the job as one of its own."""
    info = worker_info(queue.redis, worker_id)
    return info is not None and job_id not in info["jobs"]


def test_a_superseded_attempt_writes_nothing_when_its_worker_wakes(
    queue: Queue, slow_model: Path
) -> None:
    """Paused past its heartbeat, the first worker is judged lost and the job runs again on
    the second; woken, the first is refused at its next write and drops its attempt."""
    first = queue.start_worker()
    [job_id] = queue.client.submit([spec(slow_model, max_tokens=800, seed=1)])
    queue.wait_tokens(job_id, attempt=1)
    queue.start_worker()
    with paused(first.process.pid):
        queue.wait_state(job_id, "succeeded", timeout=120)
        done = queue.client.get(job_id)
        lost_output = queue.client.ledger.output(job_id, 1)
    wait_until(lambda: dropped_by(queue, first.worker_id, job_id), what="the stale attempt dropped")
    job = queue.client.get(job_id)
    assert succeeded_once(job)
    assert [a.state for a in job.attempts] == [JobState.failed, JobState.succeeded]
    assert job.attempts[0].error == LOST_REASON
    # Nothing of the woken attempt reached the job: figures, output, state.
    assert (job.completion_tokens, job.tokens_per_second) == (800, done.tokens_per_second)
    assert job.output == done.output
    assert queue.client.ledger.output(job_id, 1) == lost_output


def test_a_stalled_server_makes_no_live_worker_look_dead(queue: Queue, slow_model: Path) -> None:
    """Every heartbeat lease expires while the server is stopped; when it comes back the job's
    worker is still stopped for a moment (so it cannot renew first). Nobody is judged lost."""
    first = queue.start_worker(PROMPTSPOOL_HEARTBEAT_TTL="4")
    [job_id] = queue.client.submit([spec(slow_model, max_tokens=1500, seed=2)])
    queue.wait_tokens(job_id, attempt=1)
    queue.start_worker(PROMPTSPOOL_HEARTBEAT_TTL="4")
    server = queue.server.process
    assert server is not None
    with paused(first.process.pid):
        with paused(server.pid):
            let_time_pass(6.0)  # longer than a heartbeat lease of 4 s
        let_time_pass(2.0)  # two rounds of the other worker's reaper, with the server back
    job = queue.client.wait(job_id, timeout=180)
    assert succeeded_once(job)
    assert len(job.attempts) == 1 and job.completion_tokens == 1500
    assert queue.redis.hget(keys.job(job_id), "lost") in (b"0", "0")


def test_a_cancel_sticks_when_the_paused_workers_job_is_taken_back(
    queue: Queue, slow_model: Path
) -> None:
    first = queue.start_worker()
    [job_id] = queue.client.submit([spec(slow_model, max_tokens=1500, seed=3)])
    queue.wait_tokens(job_id, attempt=1)
    queue.start_worker()
    with paused(first.process.pid):
        assert queue.client.cancel(job_id) == "requested"
        ended = queue.wait_state(job_id, "cancelled", "succeeded", "failed", timeout=120)
        output = queue.client.ledger.output(job_id, 1)
    assert (ended.state, ended.attempt) == (JobState.cancelled, 1)
    wait_until(lambda: dropped_by(queue, first.worker_id, job_id), what="the stale attempt dropped")
    job = queue.client.get(job_id)
    assert job.state is JobState.cancelled and job.error == "cancelled by the user"
    assert [a.state for a in job.attempts] == [JobState.cancelled]
    assert job.output == output != ""


def test_serve_replaces_a_worker_that_stopped_answering(
    serve: ServeProcess, slow_model: Path
) -> None:
    """`serve`'s only worker is stopped mid-job: no other worker's reaper exists. `serve` sees
    its heartbeat stand still, kills it, and the job runs again on the new worker."""
    client = serve.client()
    [job_id] = client.submit([spec(slow_model, max_tokens=600, seed=4)])
    wait_for_event(client.redis, lambda e: e.type == "tokens", stream=keys.events(job_id))
    [info] = client.workers()
    pid = int(info["pid"])
    start = len(serve.lines)
    os.kill(pid, signal.SIGSTOP)
    try:
        serve.wait_line(f"the worker (pid {pid}) stopped answering", start=start)
        wait_pid_gone(pid)
        job = client.wait(job_id, timeout=180)
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert succeeded_once(job)
    assert [a.error for a in job.attempts[:-1]] == [HUNG_REASON]
    assert job.completion_tokens == 600
    client.close()


def test_a_laptop_sleep_and_wake_leave_the_running_job_as_it_was(
    serve: ServeProcess, slow_model: Path
) -> None:
    """Everything stops at once (serve, its worker, the server) for three heartbeat lifetimes
    and goes on: no worker is judged lost or replaced, the job finishes in its first attempt."""
    client = serve.client()
    [job_id] = client.submit([spec(slow_model, max_tokens=800, seed=5)])
    wait_for_event(client.redis, lambda e: e.type == "tokens", stream=keys.events(job_id))
    start = len(serve.lines)
    group = os.getpgid(serve.process.pid)
    with paused(serve.server_pid):
        os.killpg(group, signal.SIGSTOP)
        try:
            let_time_pass(6.0)
        finally:
            os.killpg(group, signal.SIGCONT)
    job = client.wait(job_id, timeout=180)
    assert succeeded_once(job) and len(job.attempts) == 1
    assert job.completion_tokens == 800
    assert not [line for line in serve.lines[start:] if "restarting" in line or "stopped" in line]
    client.close()
