"""Limits of remote endpoints across workers, and the remote's rate limit answered politely."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.conftest import Remote, start_remote
from tests.remote.test_remote_jobs import remote_job
from worker.jobs.job import Job, JobState
from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.events import read_events
from worker.remote.limits import EndpointSlots, Pacer
from worker.testing.harness import Queue, wait_until


def test_slots_are_shared_and_leases_run_out(queue: Queue) -> None:
    slots = EndpointSlots(queue.redis, lease_s=0.3)
    assert slots.try_acquire("lab", "a", 2) == (True, 1)
    assert slots.try_acquire("lab", "b", 2) == (True, 2)
    assert slots.try_acquire("lab", "c", 2) == (False, 2)
    assert slots.try_acquire("lab", "a", 2)[0], "a holder may take its own slot again"
    slots.release("lab", "b")
    assert slots.try_acquire("lab", "c", 2) == (True, 2)
    assert slots.try_acquire("other", "d", 1) == (True, 1), "each endpoint has its own"
    # 'a' stops renewing (its worker paused): its slot is free once the lease runs out.
    wait_until(lambda: slots.try_acquire("lab", "e", 2)[0], timeout=5, what="a's lease to end")
    assert not slots.renew("lab", "a"), "a lease that ran out is not renewed"
    assert slots.renew("lab", "e"), "a live lease is renewed"


def test_the_pacer_spaces_requests_on_the_servers_clock(queue: Queue) -> None:
    pacer = Pacer(queue.redis)
    waits = [pacer.reserve("lab", 120) for _ in range(4)]  # one every 0.5 s
    assert waits[0] == 0
    for earlier, later in itertools.pairwise(waits):
        assert later - earlier == pytest.approx(0.5, abs=0.05)
    assert pacer.reserve("other", 120) == 0, "each endpoint has its own pace"


def test_a_429_holds_every_request_then_lets_them_go_one_by_one(queue: Queue) -> None:
    pacer = Pacer(queue.redis)
    assert pacer.reserve("lab") == 0 and pacer.reserve("lab") == 0, "unpaced until a 429"
    assert pacer.slow_down("lab", 0.4) == 0.4
    assert pacer.slow_down("lab", 0.2) == 0.4, "the longest wait asked for is kept"
    waits = [pacer.reserve("lab") for _ in range(3)]
    assert waits[0] == pytest.approx(0.4, abs=0.05), "nobody starts before the 429's wait"
    assert waits[1] - waits[0] == pytest.approx(0.4, abs=0.05)
    assert waits[2] - waits[1] == pytest.approx(0.4, abs=0.05)
    assert pacer.reserve("other") == 0


@pytest.fixture
def limited_remote(remote_models: Path) -> Iterator[Remote]:
    """A remote whose API takes 300 requests a minute per token (a burst of 5)."""
    yield from start_remote(remote_models, PROMPTSPOOL_HTTP_RATE_LIMIT_RPM="300")


@pytest.mark.slow
def test_jobs_wait_out_a_rate_limit_and_run_exactly_once(
    queue: Queue, limited_remote: Remote
) -> None:
    remote = limited_remote
    queue.configure(endpoints=[remote.endpoint(max_concurrency=8)], remote_max_tries=40)
    queue.start_worker(remote=True)
    ids = queue.client.submit(
        [
            JobSpec(
                prompt=f"Story {n}:",
                model="remote/stories260K",
                raw=True,
                max_tokens=8,
                temperature=0.0,
            )
            for n in range(50)
        ]
    )
    wait_until(
        lambda: all(j.state.finished for j in queue.client.get_many(ids)),
        timeout=120, what="50 remote jobs to end",
    )  # fmt: skip
    jobs = queue.client.get_many(ids)
    assert [j.state for j in jobs] == [JobState.succeeded] * 50, [j.error for j in jobs]
    there = remote.queue.client.list()
    assert len(there) == 50, "each job reached the remote exactly once"
    assert all(j.state is JobState.succeeded for j in there)
    limited = [a for j in jobs for a in j.attempts if a.error and "rate limited (429)" in a.error]
    assert limited, "the remote's limit was hit: those tries are kept as attempts"
    assert all("endpoint 'remote'" in (a.error or "") for a in limited)
    for job in jobs:
        _assert_waited_as_told(queue, job)


def _assert_waited_as_told(queue: Queue, job: Job) -> None:
    """Each try after a 429 started no sooner than the remote's Retry-After said."""
    due: float | None = None
    for event in read_events(queue.redis, {keys.events(job.id): "0-0"}, block_ms=None):
        state, data = event.data.get("state"), event.data
        if state == "queued" and data.get("retry_at") is not None:
            due = float(data["retry_at"])
        elif state == "loading" and due is not None:
            assert float(data["t"]) >= due - 0.01, f"job {job.id} tried again too soon"
            due = None


@pytest.mark.slow
def test_max_concurrency_holds_across_workers(queue: Queue, remote: Remote) -> None:
    queue.configure(endpoints=[remote.endpoint(max_concurrency=2)])
    queue.start_worker(remote=True)
    queue.start_worker(remote=True)
    ids = [remote_job(queue, "remote/slow", max_tokens=24) for _ in range(8)]
    wait_until(
        lambda: all(j.state.finished for j in queue.client.get_many(ids)),
        timeout=180, what="8 remote jobs to end",
    )  # fmt: skip
    assert all(j.state is JobState.succeeded for j in queue.client.get_many(ids))
    there = remote.queue.client.list()
    assert len(there) == 8
    spans = [(j.started_at or 0.0, j.finished_at or 0.0) for j in there]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2, f"{most} requests ran at once on an endpoint that takes 2"
    assert len({j.worker for j in queue.client.get_many(ids)}) == 2, "both workers ran jobs"
