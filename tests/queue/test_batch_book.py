"""BatchBook on a real server: a batch left `validating` is queued once, whoever resumes it;
a batch past its window ends `expired`; every end is announced once."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from worker.jobs.job import JobState
from worker.queue import keys
from worker.queue.batches.book import BatchBook
from worker.testing.harness import Queue

LINES = 5


class Crash(BaseException):
    """The process that created the batch died before its jobs were queued."""


def batch_file(lines: int = LINES) -> bytes:
    body = {"model": "tiny", "prompt": "hi", "max_tokens": 4}
    rows = [{"custom_id": f"r{n}", "method": "POST", "url": "/v1/completions", "body": body}
            for n in range(lines)]  # fmt: skip
    return "\n".join(json.dumps(row) for row in rows).encode()


@pytest.fixture
def book(queue: Queue, tiny_model: Path) -> BatchBook:
    queue.settings.model_dirs = [tiny_model.parent]
    return BatchBook(queue.client)


def crashed_batch(queue: Queue, book: BatchBook) -> str:
    """A batch recorded `validating` whose creator died before queueing, its claim expired."""

    def crash(*args: Any, **kwargs: Any) -> list[str]:
        raise Crash

    stored = book.files.add(batch_file(), "in.jsonl", "batch")
    with pytest.raises(Crash):
        BatchBook(queue.client, submit=crash).create(stored.id, "/v1/completions")
    [batch_id] = book.store.ids()
    assert book.settle(batch_id).status == "validating"  # its creator's claim still holds
    queue.redis.delete(keys.batch_claim(batch_id))  # ... until it expires
    return batch_id


def test_a_batch_left_validating_is_queued_once_on_the_next_read(
    queue: Queue, book: BatchBook
) -> None:
    batch_id = crashed_batch(queue, book)
    assert queue.redis.zcard(keys.JOBS) == 0
    resumed = book.settle(batch_id)
    assert resumed.status == "in_progress" and resumed.request_counts.total == LINES
    assert book.settle(batch_id).status == "in_progress"
    assert queue.redis.zcard(keys.JOBS) == LINES
    assert len(book.store.job_ids(batch_id)) == LINES


def test_two_processes_resuming_one_batch_queue_it_once(queue: Queue, book: BatchBook) -> None:
    """The second one's transaction is refused: the batch changed after it checked it."""
    batch_id = crashed_batch(queue, book)
    other = BatchBook(queue.client)

    def submit_after_the_other(*args: Any, guard: Any, **kwargs: Any) -> list[str]:
        def checked_then_overtaken(pipe: Any) -> None:
            guard(pipe)  # watched and found `validating` ...
            queue.redis.delete(keys.batch_claim(batch_id))
            done = threading.Thread(target=other.settle, args=(batch_id,))
            done.start()  # ... then the other process queues it meanwhile
            done.join(60)

        return queue.client.submit(*args, guard=checked_then_overtaken, **kwargs)

    queue.redis.delete(keys.batch_claim(batch_id))
    slow = BatchBook(queue.client, submit=submit_after_the_other)
    assert slow.settle(batch_id).status == "in_progress"
    assert queue.redis.zcard(keys.JOBS) == LINES
    assert len(book.store.job_ids(batch_id)) == LINES


def test_a_batch_past_its_window_cancels_what_is_left_and_ends_expired(
    queue: Queue, book: BatchBook
) -> None:
    after = queue.client.last_event_id()
    stored = book.files.add(batch_file(), "in.jsonl", "batch")
    batch = book.create(stored.id, "/v1/completions", metadata={"k": "v"})
    assert batch.status == "in_progress"
    queue.redis.hset(keys.batch(batch.id), "expires_at", batch.created_at - 1)  # a day passed
    expired = book.settle(batch.id)
    assert expired.status == "expired" and expired.expired_at is not None
    assert expired.request_counts.failed == LINES and expired.output_file_id is None
    assert expired.error_file_id is not None
    errors = [json.loads(x) for x in book.files.content(expired.error_file_id).splitlines()]
    assert [e["custom_id"] for e in errors] == [f"r{n}" for n in range(LINES)]
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    jobs = queue.client.get_many(book.store.job_ids(batch.id))
    assert {job.state for job in jobs} == {JobState.cancelled}
    assert book.settle(batch.id) == expired
    announced = [e for e in queue.client.read_global_events(after) if e.type == "batch"]
    assert [(e.data["batch"], e.data["state"]) for e in announced] == [(batch.id, "expired")]
