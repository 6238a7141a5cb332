"""Worker heartbeats: what a worker writes, and judging it lost without being fooled by pauses.

A lease that expires by the clock says a worker was alive, not that it is dead: a stalled
server, a laptop's sleep, or the watcher itself being paused expires every lease though no
worker died. So each beat also counts up a counter, and a watcher (a worker's reaper, or the
supervisor of a worker process) samples the counters every round and measures how long one
has stood still in *contact time*: time between two of its own rounds. When a round comes
late (the watcher, the server or the machine stopped for a while) nothing is judged from it:
every worker gets a fresh `ttl` from then on. A worker that is really paused, hung or dead
while its watcher keeps its rounds is judged lost after `ttl`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from worker.queue import keys
from worker.queue.replies import as_text


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def write_beat(client: redis.Redis, worker_id: str, info: Mapping[str, Any], ttl: float) -> None:
    """One heartbeat: the worker's info (a key that lives `ttl`), and its counter, one up."""
    data = {"id": worker_id, "pid": os.getpid(), "host": socket.gethostname(), "t": time.time()}
    data.update(info)
    with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.worker(worker_id), json.dumps(data), px=int(ttl * 1000))
        pipe.sadd(keys.WORKERS, worker_id)
        pipe.hincrby(keys.BEATS, worker_id, 1)
        pipe.execute()


def read_beats(client: redis.Redis, worker_ids: Iterable[str]) -> dict[str, int | None]:
    """Each worker's heartbeat counter (None: it never beat, or was forgotten)."""
    ids = list(worker_ids)
    if not ids:
        return {}
    values: Any = client.hmget(keys.BEATS, ids)
    return {w: int(as_text(v)) if v is not None else None for w, v in zip(ids, values, strict=True)}


def forget_beats(client: redis.Redis, worker_ids: Iterable[str]) -> None:
    ids = list(worker_ids)
    if ids:
        client.hdel(keys.BEATS, *ids)


class HeartbeatWatch:
    """Judges workers lost from their heartbeat counters, in contact time (see the module).

    `observe()` is called once a round with the counters of the workers to watch; it
    returns those that have stood still for `ttl` seconds of contact. A round that comes more
    than `max_gap` seconds after the previous one is a stall: it judges nobody and starts
    every worker's time afresh.
    """

    def __init__(self, ttl: float, max_gap: float) -> None:
        self.ttl = ttl
        self.max_gap = max_gap
        self._last_round: float | None = None
        self._seen: dict[str, tuple[int | None, float]] = {}  # id -> (counter, still for s)

    def observe(self, counters: Mapping[str, int | None], now: float | None = None) -> set[str]:
        now = time.monotonic() if now is None else now
        gap = 0.0 if self._last_round is None else max(0.0, now - self._last_round)
        self._last_round = now
        stalled = gap > self.max_gap
        seen: dict[str, tuple[int | None, float]] = {}
        lost = set()
        for worker_id, counter in counters.items():
            previous = self._seen.get(worker_id)
            moved = counter is not None and (previous is None or counter != previous[0])
            if previous is None or moved or stalled:
                seen[worker_id] = (counter if moved or previous is None else previous[0], 0.0)
                continue
            still = previous[1] + gap
            seen[worker_id] = (previous[0], still)
            if still >= self.ttl:
                lost.add(worker_id)
        self._seen = seen  # workers no longer asked about are forgotten
        return lost
