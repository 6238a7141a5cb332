"""The time left of a generating job: a steady estimate, given only once the rate has settled."""

from __future__ import annotations

from pathlib import Path

from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.eta import STEADY_TOKENS, EtaEstimator
from worker.queue.events import Event, read_events
from worker.queue.publisher import StreamPublisher
from worker.testing.harness import Queue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_eta_from_the_slow_first_tokens_then_a_steady_one() -> None:
    """The issue's case: two tokens after ~3.7 s once made '15m 48s' of a 512-token job."""
    clock = Clock()
    eta = EtaEstimator(clock)
    clock.now += 0.5
    assert eta.update(1, 512) is None
    clock.now += 3.2  # the second token came slowly (weights still paging in)
    assert eta.update(2, 512) is None
    done = 2
    estimates = []
    while done < 200:  # then 20 tokens a second
        clock.now += 0.25
        done += 5
        estimates.append((done, eta.update(done, 512)))
    assert all(value is None for d, value in estimates if d < STEADY_TOKENS)
    last_done, last = estimates[-1]
    assert last is not None
    assert abs(last - (512 - last_done) / 20) < 2.0  # the steady rate, the slow start forgotten
    given = [value for _, value in estimates if value is not None]
    assert max(given) < 60  # never minutes, as a rate from the first tokens would say


def test_eta_counts_down_smoothly_at_an_even_rate() -> None:
    clock = Clock()
    eta = EtaEstimator(clock)
    given = []
    for done in range(1, 100):  # 10 tokens a second, 512 to make
        clock.now += 0.1
        given.append(eta.update(done, 512))
    assert given[: STEADY_TOKENS - 1] == [None] * (STEADY_TOKENS - 1)
    steady = [value for value in given if value is not None]
    assert all(abs(value - (512 - done) / 10) < 1.0 for done, value in
               zip(range(STEADY_TOKENS, 100), steady, strict=True))  # fmt: skip
    assert steady == sorted(steady, reverse=True)


def stream_events(queue: Queue, stream: str) -> list[Event]:
    """Everything on `stream` so far, read as the desktop and the API read it (XREAD)."""
    events: list[Event] = []
    after = "0-0"
    while batch := read_events(queue.redis, {stream: after}):
        events += batch
        after = batch[-1].id
    return events


def test_the_publisher_sends_the_steady_eta_not_the_engines(queue: Queue, tiny_model: Path) -> None:
    """The engine's own ETA is its rate since the first token: the issue's slow start made
    it ~15 minutes for a 512-token job that took ~25 s. What reaches the job's stream (the
    API, the detail pane) and the global one (the table) is the steady estimate instead."""
    ledger = queue.client.ledger
    [job_id] = ledger.create([JobSpec(model=str(tiny_model), prompt="hi", max_tokens=512)])
    assert ledger.claim(job_id, 1, "test-worker") == "ok"
    clock = Clock()
    publisher = StreamPublisher(
        ledger, job_id, 1, flush_s=0.0, progress_s=0.0, eta=EtaEstimator(clock)
    )
    steady = EtaEstimator(clock)  # the same estimate, worked out beside the publisher
    expected: dict[int, float | None] = {}
    engine_said: dict[int, float] = {}
    started = clock.now

    def token(done: int, after_s: float) -> None:
        clock.now += after_s
        tps = done / (clock.now - started)  # as the batch engine measures it
        engine_said[done] = round((512 - done) / tps, 1)
        expected[done] = steady.update(done, 512)
        publisher.add("x", done=done, total=512, tps=tps, eta=engine_said[done])

    token(1, 0.5)
    token(2, 3.2)  # the second token came slowly (weights still paging in)
    for done in range(3, 201):  # then 20 tokens a second
        token(done, 0.05)
    publisher.flush()
    assert engine_said[2] > 900  # the engine's '15m' after the slow start

    tokens = [e for e in stream_events(queue, keys.events(job_id)) if e.type == "tokens"]
    progress = [
        e for e in stream_events(queue, keys.GLOBAL_EVENTS)
        if e.type == "progress" and e.job_id == job_id
    ]  # fmt: skip
    for events in (tokens, progress):
        published = {int(e.data["done"]): e.data["eta"] for e in events}
        assert published == expected  # every count, each with the steady estimate
        assert all(published[done] is None for done in range(1, STEADY_TOKENS))
        given = [published[done] for done in range(STEADY_TOKENS, 201)]
        assert None not in given and max(given) < 60  # never minutes
        assert abs(published[200] - (512 - 200) / 20) < 2.0  # the rate of the last seconds
