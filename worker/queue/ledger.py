"""The job ledger in Redis: the source of truth for every job, written before any message."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from worker.jobs.job import Attempt, Job, JobOrigin, JobState, new_job_id, now
from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.replies import as_text


class UnknownJobError(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobStateError(RuntimeError):
    """An action that the job's current state does not allow."""


class AttemptSuperseded(RuntimeError):
    """This attempt is no longer the job's current one: its worker was judged lost (paused,
    asleep, cut off) and the job went on without it. Its writes are refused; it must stop."""

    def __init__(self, job_id: str, attempt: int) -> None:
        super().__init__(f"job {job_id} attempt {attempt} was superseded; it writes nothing more")
        self.job_id = job_id
        self.attempt = attempt


def _load_scripts() -> dict[str, str]:
    text = (
        resources.files("worker.queue").joinpath("ledger_scripts.lua").read_text(encoding="utf-8")
    )
    chunks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("--@"):
            current = chunks.setdefault(line[3:].split()[0], [])
        current.append(line)
    prelude = "\n".join(chunks.pop("prelude"))
    return {name: prelude + "\n" + "\n".join(body) for name, body in chunks.items()}


_SCRIPTS = _load_scripts()
FINISHED = frozenset(state.value for state in JobState if state.finished)


def _s(value: Any) -> str | None:
    return None if value is None else as_text(value)


def _float(value: bytes | str | None) -> float | None:
    text = _s(value)
    return float(text) if text else None


def _int(value: bytes | str | None) -> int:
    text = _s(value)
    return int(float(text)) if text else 0


@dataclass(frozen=True)
class PublishWrite:
    """One `Ledger.publish` of a running attempt, as its arguments (see there)."""

    job_id: str
    attempt: int
    offset: int = 0
    text: bytes = b""
    job_event: str = ""
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    global_event: str = ""

    def args(self) -> list[Any]:
        done = "" if self.completion_tokens is None else str(self.completion_tokens)
        tps = "" if self.tokens_per_second is None else f"{self.tokens_per_second:.3f}"
        return [self.job_id, self.attempt, self.offset, self.text, self.job_event, done, tps,
                self.global_event]  # fmt: skip

    def outcome(self, result: Any) -> bool | Exception:
        """The script's reply: True when a cancel was asked, False, or the exception."""
        if isinstance(result, Exception):
            return result
        if _s(result) == "stale":
            return AttemptSuperseded(self.job_id, self.attempt)
        return _s(result) == "cancel"


class Ledger:
    """Reads and changes jobs. Every change is one atomic Lua transition."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._scripts = {name: client.register_script(body) for name, body in _SCRIPTS.items()}

    def _call(self, name: str, *args: Any) -> Any:
        result = self._scripts[name](args=[str(a) for a in args])
        return _s(result) if isinstance(result, bytes) else result

    # --- writes -----------------------------------------------------------------------

    def create(
        self,
        specs: Sequence[JobSpec],
        origins: Sequence[JobOrigin | None] | None = None,
        *,
        also: Callable[[Any, list[str]], None] | None = None,
        guard: Callable[[Any], None] | None = None,
    ) -> list[str]:
        """Record new queued jobs, all or none (one transaction), and return their ids.

        `origins` go with the specs, one each; `also(pipeline, ids)` adds more writes to the
        same transaction (a batch's record). `guard(pipeline)` runs first: it may WATCH keys
        and check them (raising to record nothing); if a watched key changes before the
        transaction, redis.WatchError and nothing is recorded (two processes queueing the
        same batch: one wins). The ids are made here, so a retried transaction (a reply lost
        to a dying server) records nothing twice: the submit script skips a job that exists.
        """
        ids = [new_job_id() for _ in specs]
        tags = list(origins) if origins is not None else [None] * len(specs)
        stamp = now()
        with self.redis.pipeline(transaction=True) as pipe:
            if guard is not None:
                guard(pipe)
                pipe.multi()
            for job_id, spec, origin in zip(ids, specs, tags, strict=True):
                self._scripts["submit"](
                    args=[job_id, spec.model_dump_json(), spec.priority.rank, stamp,
                          "" if origin is None else origin.model_dump_json(exclude_none=True)],
                    client=pipe,
                )  # fmt: skip
            if also is not None:
                also(pipe, ids)
            pipe.execute()
        return ids

    def claim(self, job_id: str, attempt: int, worker: str) -> str:
        """'ok' when this worker may run the attempt, else the reason it may not."""
        return str(self._call("claim", job_id, attempt, worker, now()))

    def mark_running(self, job_id: str, attempt: int, prompt_tokens: int) -> None:
        """The attempt has started reading its prompt; AttemptSuperseded if it is not current."""
        if self._call("running", job_id, attempt, prompt_tokens, now()) != "ok":
            raise AttemptSuperseded(job_id, attempt)

    def publish(
        self,
        job_id: str,
        attempt: int,
        *,
        offset: int = 0,
        text: bytes = b"",
        job_event: str = "",
        completion_tokens: int | None = None,
        tokens_per_second: float | None = None,
        global_event: str = "",
    ) -> bool:
        """Write what a running attempt produced, fenced by its attempt number: `text` at
        byte `offset` of its output, an event on the job's stream, its live counts, an event on
        the global stream (each optional), in one atomic step. True when a cancel was asked;
        AttemptSuperseded (and nothing written) when the attempt is no longer the current one.
        """
        write = PublishWrite(job_id, attempt, offset, text, job_event, completion_tokens,
                             tokens_per_second, global_event)  # fmt: skip
        outcome = write.outcome(self._scripts["publish"](args=write.args()))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def publish_many(self, writes: Sequence[PublishWrite]) -> list[bool | Exception]:
        """Several `publish` calls (of different attempts) in one round trip, each its own
        atomic step: per write, whether a cancel was asked, or the exception it raised
        (AttemptSuperseded, a script error). A lost connection raises for all of them."""
        results = self._evalsha_many("publish", [write.args() for write in writes])
        return [write.outcome(result) for write, result in zip(writes, results, strict=True)]

    def _evalsha_many(self, name: str, calls: Sequence[Sequence[Any]]) -> list[Any]:
        """The script run once per `calls` entry, pipelined: one round trip. (Running a
        registered script in a pipeline asks SCRIPT EXISTS first, a round trip per batch;
        here the script is loaded only when the server says it lacks it, as after its
        restart, and only the calls it refused run again.)"""
        script = self._scripts[name]
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            with self.redis.pipeline(transaction=False) as pipe:
                for index in todo:
                    pipe.evalsha(script.sha, 0, *calls[index])
                replies = pipe.execute(raise_on_error=False)
            for index, reply in zip(todo, replies, strict=True):
                results[index] = reply
            todo = [i for i in todo if isinstance(results[i], redis.exceptions.NoScriptError)]
            if not todo:
                break
            script.sha = self.redis.script_load(script.script)
        return results

    def finish(
        self,
        job_id: str,
        attempt: int,
        state: JobState,
        *,
        error: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        tokens_per_second: float | None = None,
        finish_reason: str | None = None,
    ) -> bool:
        """End the attempt; `finish_reason`: why generation stopped ("stop", "length", ...)."""
        tps = "" if tokens_per_second is None else f"{tokens_per_second:.3f}"
        result = self._call(
            "finish", job_id, attempt, state.value, error or "", now(),
            prompt_tokens, completion_tokens, tps, finish_reason or "",
        )  # fmt: skip
        return bool(result == "ok")

    def cancel(self, job_id: str) -> str:
        """'cancelled' (was queued), 'requested' (running: the worker stops it) or raise."""
        result = str(self._call("cancel", job_id, now()))
        if result == "missing":
            raise UnknownJobError(job_id)
        if result not in ("cancelled", "requested"):
            raise JobStateError(f"job {job_id} has already {result}; nothing to cancel")
        return result

    def retry(self, job_id: str) -> int:
        """Queue a finished job again as a new attempt; returns the attempt number."""
        result = self._call("retry", job_id, now())
        if result == "missing":
            raise UnknownJobError(job_id)
        if isinstance(result, str):
            raise JobStateError(f"job {job_id} is {result}; only finished jobs can be retried")
        return int(result)

    def mark_lost(
        self, job_id: str, attempt: int, max_attempts: int, reason: str, *, counts: bool = True
    ) -> str:
        """The attempt ended without a result: 'requeued', 'failed' (too many lost),
        'cancelled' (a cancel was asked meanwhile: it sticks) or 'stale'.

        `counts=False` is a clean hand-back (a worker shutting down), which never fails a job.
        """
        return str(self._call("lost", job_id, attempt, now(), max_attempts, reason, int(counts)))

    def defer(self, job_id: str, attempt: int, due: float, reason: str, max_tries: int) -> str:
        """End an attempt that a remote endpoint interrupted (rate limit, overload, lost
        connection) and let the job wait until `due` (epoch s) for its next try, holding no
        worker: 'deferred', 'failed' (that was try `max_tries`), 'cancelled' (a cancel was
        asked meanwhile) or 'stale'. `release_due` puts it back in the queue's order."""
        return str(self._call("defer", job_id, attempt, now(), f"{due:.3f}", reason, max_tries))

    def release_due(self, at: float | None = None, limit: int = 500) -> list[tuple[str, int]]:
        """Put the waiting jobs whose next try is due back in the queue's order; their
        (id, attempt), whose messages the caller sends."""
        flat = self._call("release", f"{now() if at is None else at:.3f}", limit)
        items = [as_text(item) for item in flat]
        return [(items[i], int(items[i + 1])) for i in range(0, len(items), 2)]

    def next_due(self) -> float | None:
        """When the earliest waiting job's next try is due (epoch s), None if none waits."""
        first: Any = self.redis.zrange(keys.SCHEDULED, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def forget(self, job_id: str) -> None:
        """Delete a finished job and everything it wrote."""
        result = self._call("forget", job_id)
        if result == "missing":
            raise UnknownJobError(job_id)
        if result != "ok":
            raise JobStateError(f"job {job_id} is {result}; only finished jobs can be cleared")

    def forget_finished_before(self, cutoff: float, batch: int = 500) -> list[str]:
        """Forget every finished job that finished before `cutoff` (epoch s); their ids.

        Reads the jobs in pipelined batches; each forget is the atomic 'forget' script,
        which refuses a job that was retried meanwhile.
        """
        ids = self.job_ids()
        forgotten = []
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hmget(keys.job(job_id), "state", "finished_at")
                rows = pipe.execute()
            for job_id, (state, finished_at) in zip(chunk, rows, strict=True):
                ended = _float(finished_at)
                expired = _s(state) in FINISHED and ended is not None and ended < cutoff
                if expired and self._call("forget", job_id) == "ok":
                    forgotten.append(job_id)
        return forgotten

    # --- reads ------------------------------------------------------------------------

    def job_ids(self) -> list[str]:
        members: Any = self.redis.zrange(keys.JOBS, 0, -1)
        return [as_text(raw) for raw in members]

    def running_ids(self) -> list[str]:
        members: Any = self.redis.smembers(keys.RUNNING)
        return sorted(as_text(raw) for raw in members)

    def queue_positions(self) -> dict[str, int]:
        members: Any = self.redis.zrange(keys.QUEUE, 0, -1)
        return {as_text(raw): n for n, raw in enumerate(members, 1)}

    def get(self, job_id: str, *, with_output: bool = True) -> Job:
        jobs = self.get_many([job_id], with_output=with_output)
        if not jobs:
            raise UnknownJobError(job_id)
        return jobs[0]

    def get_many(self, job_ids: Iterable[str], *, with_output: bool = False) -> list[Job]:
        """Jobs in the given order (unknown ids are skipped), attempts included."""
        ids = list(job_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.job(job_id))
                pipe.lrange(keys.attempts(job_id), 0, -1)
                pipe.zrank(keys.QUEUE, job_id)  # O(log n) each: never the whole queue per job
            raw = pipe.execute()
        jobs = []
        for index, job_id in enumerate(ids):
            fields = {_s(k) or "": v for k, v in raw[3 * index].items()}
            if not fields:
                continue
            rank = raw[3 * index + 2]
            position = None if rank is None else int(rank) + 1
            jobs.append(self._decode(job_id, fields, raw[3 * index + 1], position))
        if with_output and jobs:
            self._fill_outputs(jobs)
        return jobs

    def all(
        self, states: Iterable[JobState] | None = None, *, with_output: bool = False
    ) -> list[Job]:
        """Every job in submission order (only those in `states`, when given)."""
        wanted = set(states) if states else None
        jobs = self.get_many(self.job_ids(), with_output=with_output)
        return [job for job in jobs if wanted is None or job.state in wanted]

    def page(
        self, states: Iterable[JobState] | None, offset: int, limit: int, chunk: int = 2000
    ) -> tuple[list[Job], int]:
        """Jobs `offset` to `offset + limit` in submission order (only those in `states`, when
        given), and how many match in all. Unfiltered, one range read; filtered, the states
        are read in pipelined chunks (no job bodies but the page's)."""
        wanted = {state.value for state in states} if states else None
        if wanted is None:
            total = int(self.redis.zcard(keys.JOBS))
            members: Any = self.redis.zrange(keys.JOBS, offset, offset + limit - 1)
            return self.get_many(as_text(m) for m in members), total
        ids = self.job_ids()
        matching: list[str] = []
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in part:
                    pipe.hget(keys.job(job_id), "state")
                rows = pipe.execute()
            matching += [i for i, st in zip(part, rows, strict=True) if _s(st) in wanted]
        return self.get_many(matching[offset : offset + limit]), len(matching)

    def output(self, job_id: str, attempt: int) -> str:
        return _s(self.redis.get(keys.output(job_id, attempt))) or ""

    @staticmethod
    def _decode(
        job_id: str, fields: dict[str, Any], attempt_rows: list[Any], position: int | None
    ) -> Job:
        state = JobState(as_text(fields["state"]))
        attempt = _int(fields.get("attempt"))
        attempts = [Attempt.model_validate_json(row) for row in attempt_rows]
        if not attempts or attempts[-1].number != attempt:
            attempts.append(
                Attempt(
                    number=attempt,
                    state=state,
                    started_at=_float(fields.get("started_at")),
                    worker=_s(fields.get("worker")),
                    prompt_tokens=_int(fields.get("prompt_tokens")),
                    completion_tokens=_int(fields.get("completion_tokens")),
                    tokens_per_second=_float(fields.get("tokens_per_second")),
                )
            )
        return Job(
            id=job_id,
            spec=JobSpec.model_validate_json(fields["spec"]),
            state=state,
            attempt=attempt,
            seq=_int(fields.get("seq")),
            created_at=_float(fields.get("created_at")) or 0.0,
            started_at=_float(fields.get("started_at")),
            finished_at=_float(fields.get("finished_at")),
            error=_s(fields.get("error")),
            prompt_tokens=_int(fields.get("prompt_tokens")),
            completion_tokens=_int(fields.get("completion_tokens")),
            tokens_per_second=_float(fields.get("tokens_per_second")),
            worker=_s(fields.get("worker")),
            finish_reason=_s(fields.get("finish_reason")),
            cancel_requested=bool(fields.get("cancel")),
            queue_position=position,
            attempts=attempts,
            origin=JobOrigin.model_validate_json(fields["origin"]) if "origin" in fields else None,
            retry_at=_float(fields.get("retry_at")),
            tries=_int(fields.get("tries")),
            max_tries=_int(fields.get("max_tries")) or None,
            retry_note=_s(fields.get("retry_note")),
        )

    def _fill_outputs(self, jobs: list[Job]) -> None:
        wanted = [(job, att) for job in jobs for att in job.attempts]
        values = self.redis.mget([keys.output(job.id, att.number) for job, att in wanted])
        for (job, att), value in zip(wanted, values, strict=True):
            att.output = _s(value) or ""
            if att.number == job.attempt:
                job.output = att.output
