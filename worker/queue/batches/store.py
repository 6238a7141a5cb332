"""Batches' records in the queue's server: a hash each, its jobs in line order, the index by
creation, and the one script that moves a batch from status to status."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from worker.jobs.job import JobOrigin
from worker.queue import keys
from worker.queue.batches.record import ENDED
from worker.queue.replies import as_text

CLAIM_MS = 60_000  # how long others leave a validating batch to the process that checks it
CHUNK = 5000  # jobs read per pipelined round trip

# Moves a batch from one of the statuses given to a new one, announcing it, in one step.
# KEYS: the batch's hash, the global event stream. ARGV: the statuses it may move from
# (comma separated), the fields to set (a JSON object of strings), the event ('' for none).
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if not string.find(',' .. ARGV[1] .. ',', ',' .. status .. ',', 1, true) then return status end
for name, value in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], name, value) end
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'd', ARGV[3])
end
return 'ok'
"""


class UnknownBatch(LookupError):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f"no batch with id {batch_id!r}")
        self.batch_id = batch_id


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex[:24]}"


def result_file_id(batch_id: str, kind: str) -> str:
    """The id of a batch's output or error file: the same however often it is written."""
    return "file-" + hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()[:24]


class BatchStore:
    """Reads and writes batch records; every change of status is one atomic step."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._transition = client.register_script(_TRANSITION)

    def record(self, batch_id: str, fields: Mapping[str, str | int]) -> None:
        """A new batch, claimed for CLAIM_MS by the process that records it (see claim)."""
        values: dict[Any, str | int] = dict(fields)
        seq = int(self.redis.incr(keys.SEQ))
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.batch(batch_id), mapping=values)
            pipe.set(keys.batch_claim(batch_id), "creating", px=CLAIM_MS)
            pipe.zadd(keys.BATCHES, {batch_id: seq})
            pipe.execute()

    def claim(self, batch_id: str) -> bool:
        """Whether this process may check and queue the validating batch now: nobody else
        claimed it within CLAIM_MS. Only a hint (two may still try; one transaction wins)."""
        return bool(self.redis.set(keys.batch_claim(batch_id), "resuming", nx=True, px=CLAIM_MS))

    def ids(self) -> list[str]:
        """Every batch's id, newest first."""
        members: Any = self.redis.zrange(keys.BATCHES, 0, -1, desc=True)
        return [as_text(m) for m in members]

    def statuses(self, batch_ids: Iterable[str]) -> dict[str, str]:
        """Each known batch's status (unknown ids are left out), in one round trip."""
        ids = list(batch_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            for batch_id in ids:
                pipe.hget(keys.batch(batch_id), "status")
            rows = pipe.execute()
        return {i: as_text(st) for i, st in zip(ids, rows, strict=True) if st}

    def unfinished_ids(self) -> list[str]:
        """The batches that have not ended yet."""
        return [i for i, status in self.statuses(self.ids()).items() if status not in ENDED]

    def batch_of(self, job_ids: Iterable[str]) -> set[str]:
        """The batches that the given jobs belong to."""
        ids = list(job_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(keys.job(job_id), "origin")
            origins = pipe.execute()
        found = set()
        for raw in origins:
            if raw:
                batch = JobOrigin.model_validate_json(raw).batch
                if batch:
                    found.add(batch)
        return found

    def job_ids(self, batch_id: str) -> list[str]:
        """The batch's jobs in its file's line order."""
        members: Any = self.redis.lrange(keys.batch_jobs(batch_id), 0, -1)
        return [as_text(m) for m in members]

    def states(self, ids: Sequence[str]) -> list[tuple[str | None, bool]]:
        """Each job's state (None: the job was cleared) and whether a cancel was asked."""
        rows: list[Any] = []
        for start in range(0, len(ids), CHUNK):
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in ids[start : start + CHUNK]:
                    pipe.hmget(keys.job(job_id), "state", "cancel")
                rows.extend(pipe.execute())
        return [(as_text(state) or None, bool(asked)) for state, asked in rows]

    def fields(self, batch_id: str) -> dict[str, str]:
        row: Any = self.redis.hgetall(keys.batch(batch_id))
        if not row:
            raise UnknownBatch(batch_id)
        return {as_text(k): as_text(v) for k, v in row.items()}

    def move(
        self,
        batch_id: str,
        allowed: Sequence[str],
        fields: Mapping[str, Any],
        announce: str | None = None,
    ) -> bool:
        """Set `fields` if the batch's status is one of `allowed` (and announce that it
        ended `announce`); False if it was not."""
        event = ""
        if announce is not None:
            counts = {name: int(fields.get(name, 0)) for name in ("total", "completed", "failed")}
            event = json.dumps({"type": "batch", "state": announce, "batch": batch_id,
                                "counts": counts, "t": time.time()})  # fmt: skip
        values = json.dumps({name: str(value) for name, value in fields.items()})
        result = self._transition(keys=[keys.batch(batch_id), keys.GLOBAL_EVENTS],
                                  args=[",".join(allowed), values, event])  # fmt: skip
        return as_text(result) == "ok"
