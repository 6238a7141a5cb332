"""A worker with several batch slots, end to end through the real queue."""

from __future__ import annotations

import threading
from pathlib import Path

from worker.engine.api import LoadOptions, StopSignal
from worker.engine.batch_engine import BatchEngine
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec, Priority
from worker.testing.harness import Queue


def spec(model: Path, **fields: object) -> JobSpec:
    return JobSpec.model_validate({"model": str(model), "prompt": "Once upon a time", **fields})


def test_worker_runs_as_many_jobs_as_it_has_slots(queue: Queue, slow_model: Path) -> None:
    queue.start_worker(PROMPTSPOOL_PARALLEL_JOBS="3")
    ids = queue.client.submit([spec(slow_model, max_tokens=5000, seed=i) for i in range(4)])
    for job_id in ids[:3]:
        queue.wait_tokens(job_id)
    running = [queue.client.get(job_id) for job_id in ids]
    assert [job.state for job in running] == [JobState.running] * 3 + [JobState.queued]
    assert running[3].queue_position == 1  # the fourth waits, visibly, in the broker
    assert queue.client.cancel(ids[1]) == "requested"
    queue.wait_state(ids[1], "cancelled")
    queue.wait_tokens(ids[3])  # it takes the freed slot
    assert queue.client.get(ids[0]).state is JobState.running  # the others go on
    for job_id in (ids[0], ids[2], ids[3]):
        queue.client.cancel(job_id)
        queue.wait_state(job_id, "cancelled")


def test_parallel_jobs_write_what_they_write_alone(queue: Queue, stories_model: Path) -> None:
    queue.start_worker(PROMPTSPOOL_PARALLEL_JOBS="4")
    jobs = [
        spec(stories_model, max_tokens=120, seed=i, temperature=0.0 if i % 2 else 0.8)
        for i in range(1, 7)
    ]
    ids = queue.client.submit(jobs)
    finished = [queue.client.wait(job_id, timeout=120) for job_id in ids]
    engine = BatchEngine(LoadOptions(), 4)  # the worker's engine, one job at a time
    try:
        expected = [engine.submit(job, StopSignal(threading.Event())).wait().text for job in jobs]
    finally:
        engine.close()
    assert [job.state for job in finished] == [JobState.succeeded] * len(jobs)
    assert [job.output for job in finished] == expected
    assert [queue.streamed_text(job_id) for job_id in ids] == expected


def test_priority_decides_who_takes_a_free_slot(queue: Queue, slow_model: Path) -> None:
    queue.start_worker(PROMPTSPOOL_PARALLEL_JOBS="2")
    short, long = queue.client.submit(
        [spec(slow_model, max_tokens=40, seed=1), spec(slow_model, max_tokens=5000, seed=2)]
    )
    for job_id in (short, long):
        queue.wait_tokens(job_id)
    priorities = (Priority.low, Priority.normal, Priority.high)
    low, normal, high = queue.client.submit(
        [spec(slow_model, max_tokens=2, priority=p) for p in priorities]
    )
    assert queue.client.get(high).queue_position == 1
    for job_id in (low, normal, high):  # one slot frees at a time: they run one by one
        queue.wait_state(job_id, "succeeded", timeout=120)
    starts = {job_id: queue.client.get(job_id).started_at or 0 for job_id in (low, normal, high)}
    assert starts[high] < starts[normal] < starts[low]
    assert queue.client.get(long).state is JobState.running
    queue.client.cancel(long)
    queue.wait_state(long, "cancelled")
