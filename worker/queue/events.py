"""Job event streams: the events on them, reading and following them, and queue announcements."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from worker.jobs.job import JobState
from worker.queue import keys
from worker.queue.replies import as_text

GLOBAL_MAXLEN = 100_000


def announce(client: redis.Redis, event: dict[str, Any]) -> None:
    """Put one event (worker or queue news, stamped now) on the global stream."""
    payload = json.dumps({**event, "t": time.time()})
    client.xadd(keys.GLOBAL_EVENTS, {"d": payload}, maxlen=GLOBAL_MAXLEN, approximate=True)


@dataclass(frozen=True)
class Event:
    """One stream entry: its id (for resuming) and its decoded payload."""

    stream: str
    id: str
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data.get("type", ""))

    @property
    def job_id(self) -> str:
        return str(self.data.get("id", ""))

    @property
    def attempt(self) -> int:
        return int(self.data.get("attempt", 0))

    @property
    def state(self) -> JobState | None:
        return JobState(self.data["state"]) if self.type == "state" else None


def read_events(
    client: redis.Redis, positions: dict[str, str], block_ms: int | None = None, count: int = 500
) -> list[Event]:
    """Events after each stream's last id; blocks up to block_ms (None: don't block)."""
    streams: Any = positions
    reply: Any = client.xread(streams, count=count, block=block_ms)
    events = []
    for stream, entries in reply or []:
        name = as_text(stream)
        for entry_id, fields in entries:
            payload = fields.get(b"d", fields.get("d"))
            events.append(Event(name, as_text(entry_id), json.loads(payload)))
    return events


def follow_job(
    client: redis.Redis, job_id: str, after: str = "0-0", block_ms: int = 1000
) -> Iterator[Event]:
    """Every event of one job from `after` on, replaying history first; never ends by itself."""
    stream = keys.events(job_id)
    last = after
    while True:
        for event in read_events(client, {stream: last}, block_ms=block_ms):
            last = event.id
            yield event
