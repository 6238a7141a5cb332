"""The worker's one publisher: every running attempt's text in shared round trips, no thread
woken per token, the first text at once, and what a write meets (cancel, superseded) routed
to the attempt it belongs to. On the test queue's real server and ledger."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import pytest

from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.ledger import AttemptSuperseded, Ledger, PublishWrite
from worker.queue.publisher import WorkerPublisher
from worker.testing.harness import Queue, wait_for_event, wait_until


class CountingLedger(Ledger):
    """The real ledger, remembering how many attempts each pipelined round trip carried."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.round_trips: list[int] = []

    def publish_many(self, writes: Sequence[PublishWrite]) -> list[bool | Exception]:
        self.round_trips.append(len({w.job_id for w in writes}))
        return super().publish_many(writes)


@pytest.fixture
def ledger(queue: Queue) -> CountingLedger:
    return CountingLedger(queue.redis)


@pytest.fixture
def publisher(ledger: CountingLedger) -> Iterator[WorkerPublisher]:
    made = WorkerPublisher(ledger, flush_s=0.025, progress_s=0.0)
    yield made
    made.stop()


def more_than(items: list[int], count: int) -> bool:
    return len(items) > count


def running_jobs(ledger: Ledger, model: Path, count: int) -> list[str]:
    """`count` jobs claimed and marked running, as a worker's runner leaves them."""
    ids = ledger.create([JobSpec(model=str(model), prompt=f"job {i}") for i in range(count)])
    for job_id in ids:
        assert ledger.claim(job_id, 1, "test-worker") == "ok"
        ledger.mark_running(job_id, 1, 3)
    return ids


def test_all_jobs_text_goes_out_together(
    queue: Queue, ledger: CountingLedger, publisher: WorkerPublisher, tiny_model: Path
) -> None:
    """Eight jobs adding tokens as fast as a batch makes them: each job's output is whole and
    in order, and the round trips carry several jobs at once, far fewer than the tokens."""
    ids = running_jobs(ledger, tiny_model, 8)
    stops = [threading.Event() for _ in ids]
    streams = [publisher.open(job_id, 1, stop) for job_id, stop in zip(ids, stops, strict=True)]
    for stream in streams:
        publisher.release(stream)
    tokens = 300
    for done in range(1, tokens + 1):  # one loop thread, every job's token per step
        for stream in streams:
            stream.add(f"{done} ", done=done, total=tokens, tps=None)
        if done % 50 == 0:  # let the publisher's rounds interleave with the steps
            wait_until(partial(more_than, ledger.round_trips, done // 50), what="a round trip")
    for stream in streams:
        publisher.close(stream)
    expected = "".join(f"{done} " for done in range(1, tokens + 1))
    for job_id in ids:
        assert queue.client.get(job_id).output == expected
    assert sum(ledger.round_trips) < 8 * tokens / 10
    assert max(ledger.round_trips) > 1  # several jobs in one round trip
    assert not any(stop.is_set() for stop in stops)


def test_first_text_at_once_the_rest_in_batches_and_nothing_while_held(
    queue: Queue, ledger: CountingLedger, tiny_model: Path
) -> None:
    slow = WorkerPublisher(ledger, flush_s=60.0)  # no batch of its own during the test
    try:
        [job_id] = running_jobs(ledger, tiny_model, 1)
        stream = slow.open(job_id, 1, threading.Event())
        stream.add("held ", done=1, total=10)  # before 'running': stays with the stream
        assert queue.client.get(job_id).output == ""
        after = queue.client.last_event_id(job_id)
        slow.release(stream)
        first = wait_for_event(
            queue.redis, lambda e: e.type == "tokens", stream=keys.events(job_id), after=after,
            timeout=10,
        )  # fmt: skip
        assert first.data["text"] == "held "  # at once, not after the 60 s interval
        stream.add("more ", done=2, total=10)
        stream.add("text", done=3, total=10)
        assert queue.client.get(job_id).output == "held "
        slow.close(stream)  # the rest, on closing
        assert queue.client.get(job_id).output == "held more text"
    finally:
        slow.stop()


def test_a_cancel_reaches_the_attempt_through_its_stop_event(
    queue: Queue, ledger: CountingLedger, publisher: WorkerPublisher, tiny_model: Path
) -> None:
    [job_id, other] = running_jobs(ledger, tiny_model, 2)
    stop, other_stop = threading.Event(), threading.Event()
    stream, other_stream = publisher.open(job_id, 1, stop), publisher.open(other, 1, other_stop)
    for s in (stream, other_stream):
        publisher.release(s)
    queue.client.cancel(job_id)
    done = 0
    while not stop.wait(0.01):  # tokens keep coming until the job's stop signal fires
        done += 1
        stream.add("x", done=done, total=10_000)
        other_stream.add("y", done=done, total=10_000)
    assert stream.cancel_seen and not other_stop.is_set()
    publisher.close(stream)
    publisher.close(other_stream)


def test_a_superseded_attempt_is_stopped_and_close_raises(
    queue: Queue, ledger: CountingLedger, publisher: WorkerPublisher, tiny_model: Path
) -> None:
    """Its worker was judged lost (paused, cut off) and the job went on without it: the
    batch is refused, nothing of it is written, and the attempt learns why."""
    [job_id] = running_jobs(ledger, tiny_model, 1)
    stop = threading.Event()
    stream = publisher.open(job_id, 1, stop)
    publisher.release(stream)
    stream.add("before ", done=1, total=10)
    wait_until(lambda: queue.client.get(job_id).output == "before ", what="the first text")
    assert ledger.mark_lost(job_id, 1, 3, "its worker was lost") == "requeued"
    done = 1
    while not stop.wait(0.01):
        done += 1
        stream.add("after ", done=done, total=10_000)
    with pytest.raises(AttemptSuperseded):
        publisher.close(stream)
    assert queue.client.get(job_id).output == ""  # the new attempt's (empty) output
    assert queue.client.get(job_id).attempt == 2


def test_a_batch_goes_out_in_one_round_trip_and_survives_a_server_that_forgot_its_scripts(
    queue: Queue, ledger: CountingLedger, tiny_model: Path
) -> None:
    """A batch of writes is one pipelined round trip, without asking first whether the
    server knows the script; a server that lost its scripts (restarted, SCRIPT FLUSH)
    refuses the batch with NOSCRIPT, and it runs again once, whole and not twice."""
    ids = running_jobs(ledger, tiny_model, 3)
    writes = [PublishWrite(job_id, 1, text=b"one ") for job_id in ids]
    seen: list[str] = []
    monitor = queue.redis.monitor()  # type: ignore[no-untyped-call]
    with monitor:
        queue.redis.script_flush()
        assert ledger.publish_many(writes) == [False, False, False]
        queue.redis.ping()  # the end of what the monitor waits for
        while not seen or seen[-1] != "PING":
            words = str(monitor.next_command()["command"]).upper().split()
            if words[0] in ("EVALSHA", "SCRIPT", "PING"):
                seen.append(" ".join(words[:2]) if words[0] == "SCRIPT" else words[0])
    # Refused as a whole (NOSCRIPT), the script loaded, the batch again; no SCRIPT EXISTS.
    assert seen == ["SCRIPT FLUSH", *["EVALSHA"] * 3, "SCRIPT LOAD", *["EVALSHA"] * 3, "PING"]
    nexts = [PublishWrite(job_id, 1, offset=4, text=b"two") for job_id in ids]
    assert ledger.publish_many(nexts) == [False, False, False]
    for job_id in ids:
        assert queue.client.get(job_id).output == "one two"
