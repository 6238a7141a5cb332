"""Batches of the OpenAI API, kept in the queue: recorded, queued all or nothing, and settled
(status, counts, output files) from their jobs' states by whoever reads them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from worker.jobs.batchfile import BatchFile, BatchPlan, LineError, read_batch
from worker.jobs.job import FINISHED_STATES, Job, JobOrigin, JobState
from worker.jobs.spec import JobSpec
from worker.modelfile.catalog import resolve_model
from worker.queue import keys
from worker.queue.batches.files import FileStore, UnknownFile
from worker.queue.batches.output import batch_results
from worker.queue.batches.record import ENDED, Batch, RequestCounts, decode_batch
from worker.queue.batches.store import (
    CHUNK,
    BatchStore,
    UnknownBatch,
    new_batch_id,
    result_file_id,
)
from worker.queue.client import JobClient
from worker.queue.ledger import JobStateError, UnknownJobError
from worker.queue.replies import as_text
from worker.settings import Settings

WINDOWS = {"24h": 86_400}  # the completion windows a batch may ask for, in seconds
MAX_METADATA = 16
_FINISHED = frozenset(state.value for state in FINISHED_STATES)
_FINISHED_OR_GONE = frozenset({*_FINISHED, None})

# JobClient.submit's signature: (specs, origins, *, also=, guard=) -> job ids.
Submit = Callable[..., list[str]]


class BatchStateError(RuntimeError):
    """An action the batch's status does not allow (cancelling a completed batch)."""


class BatchRefused(ValueError):
    """A batch that cannot be created as asked; names the parameter and says why."""

    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class _Moved(Exception):
    """The batch left `validating` while its file was checked: another process queued it,
    or it was cancelled."""


def check_batch_file(
    data: bytes, endpoint: str | None, defaults: Mapping[str, Any], settings: Settings
) -> BatchPlan:
    """A batch file's requests, or every bad line (see read_batch); models are looked up
    as the settings say, `defaults["model"]` being the one "default" names."""
    default = Path(defaults["model"]) if defaults.get("model") else None
    folders = settings.model_dirs

    def resolve(name: str) -> str | Path:
        if settings.remote_target(name) is not None:
            return name  # a remote endpoint's model, as it is
        return resolve_model(name, default, folders)

    return read_batch(data, endpoint=endpoint, defaults=defaults, resolve_model=resolve)


class BatchBook:
    """Creates, reads, cancels and settles batches. Every read settles the batch first, so a
    batch moves on whoever looks at it; the API's BatchKeeper looks whenever a job ends."""

    def __init__(self, client: JobClient, submit: Submit | None = None) -> None:
        self.client = client
        self.store = BatchStore(client.redis)
        self.files = FileStore(client.redis)
        self._submit = submit or client.submit

    # --- creating ---------------------------------------------------------------------

    def create(
        self,
        input_file_id: str,
        endpoint: str,
        *,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Record a batch (`validating`), then check its file line by line and queue its
        jobs in one transaction with the batch's move to `in_progress`; a file with bad
        lines makes a `failed` batch whose errors name them, and queues nothing.

        `defaults`: the JobSpec fields under every request (the settings' job defaults);
        kept with the batch, so that a batch left `validating` by a crash is queued later
        exactly as it would have been. UnknownFile for an unknown file; BatchRefused for a
        parameter it cannot take."""
        try:
            stored = self.files.get(input_file_id)
        except UnknownFile as exc:
            raise BatchRefused(str(exc), "input_file_id", "file_not_found") from exc
        if stored.purpose != "batch":
            message = (f"file {input_file_id} has purpose {stored.purpose!r}; a batch reads "
                       "a file uploaded with purpose 'batch'")  # fmt: skip
            raise BatchRefused(message, "input_file_id")
        if completion_window not in WINDOWS:
            raise BatchRefused(f"completion_window {completion_window!r} is not supported "
                               f"(only {', '.join(WINDOWS)})", "completion_window")  # fmt: skip
        if metadata is not None and len(metadata) > MAX_METADATA:
            raise BatchRefused(f"metadata has {len(metadata)} keys; at most {MAX_METADATA}",
                               "metadata")  # fmt: skip
        if defaults is None:
            defaults = self.client.settings.job_defaults()
        batch_id = new_batch_id()
        created = int(time.time())
        fields: dict[str, str | int] = {
            "status": "validating",
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "created_at": created,
            "expires_at": created + WINDOWS[completion_window],
            "defaults": json.dumps(dict(defaults)),
        }
        if metadata is not None:
            fields["metadata"] = json.dumps(dict(metadata))
        self.store.record(batch_id, fields)
        self._queue(batch_id)
        # As it stands now: just queued, its counts are the stored ones (N, 0, 0); reading the
        # states of its N jobs back would only add time to the answer.
        return decode_batch(batch_id, self.store.fields(batch_id))

    def _queue(self, batch_id: str) -> None:
        """Check a validating batch's file and queue its jobs, or fail it; nothing if it has
        moved on. Safe to run in two processes at once: one transaction wins."""
        fields = self.store.fields(batch_id)
        if fields.get("status") != "validating":
            return
        defaults: dict[str, Any] = json.loads(fields.get("defaults") or "{}")
        try:
            data = self.files.content(fields["input_file_id"])
        except UnknownFile:
            message = f"the input file {fields['input_file_id']} was deleted before it was read"
            self._fail(batch_id, [LineError(None, "input_file_id", message, "file_not_found")])
            return
        plan = self.check(data, fields["endpoint"], defaults)
        if not plan.ok:
            self._fail(batch_id, plan.errors)
            return
        specs: list[JobSpec] = []
        origins: list[JobOrigin | None] = []
        for request in plan.requests:
            specs.append(request.spec)
            origins.append(request.origin.model_copy(
                update={"batch": batch_id, "custom_id": request.custom_id}))  # fmt: skip
        key = keys.batch(batch_id)

        def guard(pipe: Any) -> None:
            pipe.watch(key)
            if as_text(pipe.hget(key, "status")) != "validating":
                raise _Moved

        def also(pipe: Any, ids: list[str]) -> None:
            model = plan.requests[0].origin.model_name or ""
            pipe.hset(key, mapping={"status": "in_progress", "in_progress_at": int(time.time()),
                                    "total": len(ids), "model": model})  # fmt: skip
            pipe.delete(keys.batch_jobs(batch_id))
            for start in range(0, len(ids), CHUNK):
                pipe.rpush(keys.batch_jobs(batch_id), *ids[start : start + CHUNK])

        try:
            self._submit(specs, origins, also=also, guard=guard)
        except (_Moved, redis.WatchError):
            return
        except ValueError as exc:  # a model file that cannot be used (see check_model_file)
            self._fail(batch_id, [LineError(None, "body.model", str(exc), "invalid_model")])

    def check(self, data: bytes, endpoint: str | None, defaults: Mapping[str, Any]) -> BatchPlan:
        return check_batch_file(data, endpoint, defaults, self.client.settings)

    def _fail(self, batch_id: str, errors: Sequence[LineError]) -> None:
        now = int(time.time())
        data = [error.as_dict() for error in errors]
        self.store.move(batch_id, ("validating",), {"status": "failed", "failed_at": now,
                                              "errors": json.dumps(data)}, "failed")  # fmt: skip

    # --- reading ----------------------------------------------------------------------

    def get(self, batch_id: str) -> Batch:
        """The batch, settled first (see settle)."""
        return self.settle(batch_id)

    def page(self, after: str | None = None, limit: int = 20) -> tuple[list[Batch], bool]:
        """Batches newest first, those after the batch `after` (UnknownBatch if there is
        none), `limit` at most, each settled; and whether more follow."""
        ids = self.store.ids()
        if after is not None:
            if after not in ids:
                raise UnknownBatch(after)
            ids = ids[ids.index(after) + 1 :]
        batches = []
        for batch_id in ids[:limit]:
            try:
                batches.append(self.settle(batch_id))
            except UnknownBatch:
                continue
        return batches, len(ids) > limit

    # --- cancelling -------------------------------------------------------------------

    def cancel(self, batch_id: str) -> Batch:
        """Cancel the unfinished jobs: `cancelling`, then `cancelled` once every job ended
        (a running one stops within a token). BatchStateError if the batch is past that."""
        status = self.store.fields(batch_id).get("status")
        if status not in ("validating", "in_progress", "cancelling"):
            raise BatchStateError(f"batch {batch_id} is {status}; only a validating or "
                                  "in_progress batch can be cancelled")  # fmt: skip
        now = int(time.time())
        self.store.move(batch_id, ("validating", "in_progress"),
                   {"status": "cancelling", "cancelling_at": now})  # fmt: skip
        return self.settle(batch_id)

    # --- settling ---------------------------------------------------------------------

    def settle(self, batch_id: str) -> Batch:
        """Bring the batch up to date with its jobs and return it, with live counts.

        Idempotent, and safe in several processes at once: a `validating` batch nobody is
        checking is checked and queued; a batch past its window, or being cancelled, has its
        unfinished jobs cancelled; once every job ended, its output and error files are
        written (under ids fixed by the batch's id) and it ends `completed`, `cancelled` or
        `expired`, announced once on the global stream."""
        fields = self.store.fields(batch_id)
        status = fields["status"]
        if status in ENDED:
            return decode_batch(batch_id, fields)
        if status == "validating":
            if self.store.claim(batch_id):
                self._queue(batch_id)
                fields = self.store.fields(batch_id)
            if fields["status"] == "validating":
                return decode_batch(batch_id, fields)
            return self.settle(batch_id)
        ids = self.store.job_ids(batch_id)
        states = self.store.states(ids)
        now = int(time.time())
        ending = self._ending(fields)
        unfinished = _unfinished(ids, states)
        expires_at = int(fields.get("expires_at") or now + 1)
        if unfinished and ending == "completed" and now >= expires_at:
            self.store.move(batch_id, ("in_progress",), {"expired_at": now})
            fields = self.store.fields(batch_id)
            ending = self._ending(fields)
        if unfinished and ending != "completed":
            self._cancel_jobs(unfinished)
            states = self.store.states(ids)
            unfinished = _unfinished(ids, states)
        if unfinished:
            return decode_batch(batch_id, fields, self._counts(states))
        return self._finish(batch_id, fields, ids, ending)

    def settle_unfinished(self) -> int:
        """Settle every batch that has not ended; how many there were."""
        ids = self.store.unfinished_ids()
        for batch_id in ids:
            try:
                self.settle(batch_id)
            except UnknownBatch:
                continue
        return len(ids)

    def _finish(self, batch_id: str, fields: dict[str, str], ids: list[str], ending: str) -> Batch:
        """Every job ended: write the files and end the batch (once, whoever gets there)."""
        if fields["status"] == "in_progress" and ending == "completed":
            self.store.move(batch_id, ("in_progress",),
                       {"status": "finalizing", "finalizing_at": int(time.time())})  # fmt: skip
        jobs: dict[str, Job] = {}
        for start in range(0, len(ids), CHUNK // 5):
            found = self.client.get_many(ids[start : start + CHUNK // 5], with_output=True)
            jobs.update((job.id, job) for job in found)
        if any(not job.state.finished for job in jobs.values()):  # retried meanwhile
            return decode_batch(
                batch_id, self.store.fields(batch_id), self._counts(self.store.states(ids))
            )
        results = batch_results(((i, jobs.get(i)) for i in ids), ending)
        done: dict[str, Any] = {"status": ending, "total": len(ids),
                                "completed": len(results.output), "failed": len(results.errors),
                                "usage": json.dumps(results.usage)}  # fmt: skip
        if ending != "expired":  # an expired batch keeps the time it expired at
            done[f"{ending}_at"] = int(time.time())
        for kind, lines in (("output", results.output), ("error", results.errors)):
            if lines:
                file_id = result_file_id(batch_id, kind)
                self.files.add(b"".join(lines), f"{batch_id}_{kind}.jsonl", "batch_output",
                               file_id=file_id)  # fmt: skip
                done[f"{kind}_file_id"] = file_id
        self.store.move(batch_id, ("in_progress", "finalizing", "cancelling"), done, ending)
        return decode_batch(batch_id, self.store.fields(batch_id))

    @staticmethod
    def _ending(fields: Mapping[str, str]) -> str:
        """How the batch will end once its jobs have: completed, cancelled or expired."""
        if fields["status"] == "cancelling":
            return "cancelled"
        return "expired" if fields.get("expired_at") else "completed"

    @staticmethod
    def _counts(states: Sequence[tuple[str | None, bool]]) -> RequestCounts:
        completed = sum(1 for state, _ in states if state == JobState.succeeded.value)
        failed = sum(1 for state, _ in states if state is None or
                     (state in _FINISHED and state != JobState.succeeded.value))  # fmt: skip
        return RequestCounts(total=len(states), completed=completed, failed=failed)

    def _cancel_jobs(self, unfinished: Iterable[tuple[str, bool]]) -> None:
        """Cancel the jobs not yet asked to stop (a queued one ends at once)."""
        for job_id, asked in unfinished:
            if asked:
                continue
            try:
                self.client.cancel(job_id)
            except (JobStateError, UnknownJobError):
                continue  # it ended (or was cleared) meanwhile


def _unfinished(
    ids: Sequence[str], states: Sequence[tuple[str | None, bool]]
) -> list[tuple[str, bool]]:
    """The jobs that have not ended (a cleared one has), each with whether a cancel was asked."""
    return [(i, asked) for i, (state, asked) in zip(ids, states, strict=True)
            if state not in _FINISHED_OR_GONE]  # fmt: skip


@dataclass(frozen=True)
class QueuedBatchFile:
    """What became of one batch file: its batch and jobs, or each problem (nothing queued)."""

    batch: Batch | None
    job_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line 3 field 'body': ...", ...


def queue_batch_file(
    book: BatchBook, item: BatchFile, defaults: Mapping[str, Any], max_bytes: int
) -> QueuedBatchFile:
    """The batch file as a batch (its jobs queued in one step), or refused with each bad line
    (number, field, reason), nothing queued: what `submit FILE.jsonl` and a drop on the
    window do. `max_bytes`: the upload limit the API would apply."""
    if len(item.data) > max_bytes:
        size = f"{len(item.data):,} bytes, more than {max_bytes:,} (setting http_max_upload_mb)"
        return QueuedBatchFile(None, problems=[size])
    checked = book.check(item.data, None, defaults)
    if not checked.ok:
        return QueuedBatchFile(None, problems=[str(error) for error in checked.errors])
    try:
        stored = book.files.add(item.data, item.path.name, "batch")
        batch = book.create(stored.id, checked.requests[0].url, defaults=dict(defaults))
    except BatchRefused as exc:
        return QueuedBatchFile(None, problems=[exc.message])
    if batch.status == "failed":  # a model file that cannot be used, found at queueing
        errors = batch.errors.data if batch.errors is not None else []
        problems = [f"{e.param or 'the file'}: {e.message}" for e in errors]
        return QueuedBatchFile(None, problems=problems or ["the batch failed"])
    return QueuedBatchFile(batch, book.store.job_ids(batch.id))
