"""Following one job's event stream from asyncio: history first, then live, resumable by id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio

from worker.queue import keys
from worker.queue.events import Event
from worker.queue.replies import as_text

# One blocking read at most this long: well inside the client's socket timeout (redis-py's
# default is 5 s), which a longer read of a job with no news (queued, or reading a long
# prompt) would run into, ending every stream that follows the job.
BLOCK_MS = 2_000


async def job_events(
    aredis: redis.asyncio.Redis, job_id: str, after: str = "0-0"
) -> AsyncIterator[Event]:
    """The job's events after stream id `after` (history first), then live ones, without end;
    the caller stops (a finished attempt, a client gone) by closing the iterator."""
    stream = keys.events(job_id)
    last = after
    while True:
        try:
            reply: Any = await aredis.xread({stream: last}, count=500, block=BLOCK_MS)
        except redis.TimeoutError:  # a stalled server or loop: read again from where it was
            continue
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last = as_text(entry_id)
                payload = fields.get(b"d", fields.get("d"))
                yield Event(stream, last, json.loads(payload))


async def ends_current_attempt(aredis: redis.asyncio.Redis, job_id: str, event: Event) -> bool:
    """Whether `event` ends the job's current attempt: a finished state of the attempt the
    ledger has now (an earlier attempt's end, replayed, does not: a retry followed it)."""
    state = event.state
    if state is None or not state.finished:
        return False
    attempt: Any = await aredis.hget(keys.job(job_id), "attempt")
    return attempt is not None and event.attempt == int(as_text(attempt))


async def has_events_after(aredis: redis.asyncio.Redis, job_id: str, after: str) -> bool:
    """Whether the job's stream holds an event after stream id `after`."""
    entries: Any = await aredis.xrange(keys.events(job_id), f"({after}", "+", count=1)
    return bool(entries)


def valid_stream_id(text: str) -> bool:
    """'1700000000000-0' or '0-0': what Last-Event-ID may hold (both parts fit 64 bits, as
    the server requires)."""
    ms, sep, seq = text.partition("-")
    if not (sep and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        return False
    return len(text) <= 41 and int(ms) < 2**64 and int(seq) < 2**64
