"""End to end through the real server, a real Celery worker and llama.cpp."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec, Priority
from worker.testing.harness import Queue


def spec(model: Path, **fields: object) -> JobSpec:
    return JobSpec.model_validate({"model": str(model), "prompt": "Once upon a time", **fields})


def test_job_streams_and_succeeds(running_queue: Queue, stories_model: Path) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(stories_model, max_tokens=40, seed=7)])
    q.wait_state(job_id, "succeeded")
    job = q.client.get(job_id)
    assert job.state is JobState.succeeded
    assert job.completion_tokens == 40
    assert job.prompt_tokens > 0
    assert job.tokens_per_second and job.tokens_per_second > 0
    assert job.output.strip()
    assert job.attempts[0].output == job.output
    assert q.streamed_text(job_id) == job.output


def test_cancel_queued_job_never_runs(queue: Queue, tiny_model: Path) -> None:
    [job_id] = queue.client.submit([spec(tiny_model, max_tokens=10)])
    assert queue.client.cancel(job_id) == "cancelled"
    queue.start_worker()
    [later] = queue.client.submit([spec(tiny_model, max_tokens=5)])
    queue.wait_state(later, "succeeded")
    job = queue.client.get(job_id)
    assert job.state is JobState.cancelled
    assert job.started_at is None
    assert job.output == ""


def test_cancel_running_job_keeps_partial_output(running_queue: Queue, slow_model: Path) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(slow_model, max_tokens=3000)])
    q.wait_tokens(job_id)
    assert q.client.cancel(job_id) == "requested"
    q.wait_state(job_id, "cancelled")
    job = q.client.get(job_id)
    assert job.state is JobState.cancelled
    assert 0 < job.completion_tokens < 3000
    assert job.output


def test_retry_adds_an_attempt_and_keeps_the_first(running_queue: Queue, tiny_model: Path) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(tiny_model, max_tokens=8, seed=1)])
    q.wait_state(job_id, "succeeded")
    first = q.client.get(job_id).output
    assert q.client.retry(job_id) == 2
    q.client.wait(job_id, timeout=60)
    job = q.client.get(job_id)
    assert job.state is JobState.succeeded
    assert [a.number for a in job.attempts] == [1, 2]
    assert job.attempts[0].output == first
    assert job.output == first  # same seed, same text


def test_worker_killed_mid_job_finishes_in_new_attempt(
    running_queue: Queue, slow_model: Path
) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(slow_model, max_tokens=300, seed=3)])
    q.wait_tokens(job_id)
    q.workers[0].kill()
    q.start_worker()
    q.wait_state(job_id, "succeeded", timeout=90)
    job = q.client.get(job_id)
    assert job.attempt == 2
    lost = job.attempts[0]
    assert lost.state is JobState.failed and lost.error and "stopped" in lost.error
    assert lost.output  # the partial output of the lost attempt is kept
    assert job.completion_tokens == 300


def test_priority_high_runs_before_waiting_jobs(
    running_queue: Queue, slow_model: Path, tiny_model: Path
) -> None:
    q = running_queue
    [blocker] = q.client.submit([spec(slow_model, max_tokens=200)])
    q.wait_tokens(blocker)
    low, normal, high = q.client.submit(
        [
            spec(tiny_model, max_tokens=2, priority=p)
            for p in (Priority.low, Priority.normal, Priority.high)
        ]
    )
    assert q.client.get(high).queue_position == 1
    for job_id in (low, normal, high):
        q.wait_state(job_id, "succeeded", timeout=90)
    starts = {job_id: q.client.get(job_id).started_at or 0 for job_id in (low, normal, high)}
    assert starts[high] < starts[normal] < starts[low]


def test_timeout_fails_job_and_keeps_partial_output(running_queue: Queue, slow_model: Path) -> None:
    q = running_queue
    [warm] = q.client.submit([spec(slow_model, max_tokens=1)])  # load time is not the point
    q.wait_state(warm, "succeeded")
    [job_id] = q.client.submit([spec(slow_model, max_tokens=100_000, timeout=2.0)])
    q.wait_tokens(job_id)  # the slow model needs ~30 s to fill its context: 2 s end it first
    q.wait_state(job_id, "failed")
    job = q.client.get(job_id)
    assert job.error == "timed out after 2 s"
    assert job.output


def test_worker_answers_ping_while_a_job_runs(running_queue: Queue, slow_model: Path) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(slow_model, max_tokens=3000)])
    q.wait_tokens(job_id)
    replies = q.client.app.control.ping(timeout=2.0)
    assert replies, "the worker did not answer ping while generating"
    assert q.client.get(job_id).state is JobState.running
    q.client.cancel(job_id)
    q.wait_state(job_id, "cancelled")


def test_model_that_fails_to_load_fails_the_job_not_the_worker(
    running_queue: Queue, tmp_path: Path, tiny_model: Path
) -> None:
    q = running_queue
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(tiny_model.read_bytes())
    [bad_id] = q.client.submit([spec(bad, max_tokens=4)])  # submit refuses a truncated file,
    os.truncate(bad, 4096)  # so it is cut after: the worker finds it (see also test_faults)
    q.wait_state(bad_id, "failed")
    assert "failed to load" in (q.client.get(bad_id).error or "")
    [good] = q.client.submit([spec(tiny_model, max_tokens=4)])
    q.wait_state(good, "succeeded")
    assert q.workers[0].process.poll() is None


def test_worker_shutdown_hands_running_job_back(running_queue: Queue, slow_model: Path) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(slow_model, max_tokens=2000)])
    q.wait_tokens(job_id)
    q.workers[0].process.send_signal(signal.SIGTERM)
    q.workers[0].process.wait(30)
    job = q.client.get(job_id)
    assert job.state is JobState.queued
    assert job.attempt == 2
    q.start_worker()
    q.client.cancel(job_id)
    assert os.environ.get("PROMPTSPOOL_HOME")


def test_reader_resumes_mid_stream(running_queue: Queue, stories_model: Path) -> None:
    q = running_queue
    [job_id] = q.client.submit([spec(stories_model, max_tokens=200, seed=5)])
    events = q.client.events(job_id)
    first_half = []
    resume_from = "0-0"
    for event in events:
        if event.type == "tokens":
            first_half.append(event.data["text"])
            resume_from = event.id
            break
    q.wait_state(job_id, "succeeded")
    rest = []
    for event in q.client.events(job_id, after=resume_from):
        if event.type == "tokens":
            rest.append(event.data["text"])
        if event.state is JobState.succeeded:
            break
    assert "".join(first_half + rest) == q.client.get(job_id).output


@pytest.mark.parametrize("attempts", [3])
def test_poison_job_fails_after_lost_attempts(
    queue: Queue, slow_model: Path, attempts: int
) -> None:
    [job_id] = queue.client.submit([spec(slow_model, max_tokens=3000)])
    for attempt in range(1, attempts + 1):
        worker = queue.start_worker()
        queue.wait_tokens(job_id, attempt)
        worker.kill()
        queue.workers.remove(worker)
    queue.start_worker()
    queue.wait_state(job_id, "failed", timeout=60)
    job = queue.client.get(job_id)
    assert "attempts lost" in (job.error or "")
    assert len(job.attempts) == attempts
