"""Dropped files and folders to jobs: load them, check their models, and say what was refused.

An OpenAI batch file becomes a batch, or is refused with each bad line; so is a file of
job specs (JSON lines, a JSON list) refused with each bad line (item).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.jobs.batchfile import BatchFile
from worker.jobs.intake import plan
from worker.jobs.promptfiles import LoadResult, Refusal
from worker.jobs.spec import JobSpec
from worker.queue.batches.book import BatchBook
from worker.queue.batches.book import queue_batch_file as queue_batch_file_in
from worker.queue.client import JobClient

NO_MODEL = "no model chosen: pick a GGUF model in the editor (or name one in the file)"


@dataclass
class DropOutcome:
    """What a drop queued and refused, for the summary."""

    queued: list[tuple[Path, list[str]]] = field(default_factory=list)  # file, job ids
    refused: list[Refusal] = field(default_factory=list)
    error: str | None = None  # the queue refused the submission as a whole
    batches: dict[Path, str] = field(default_factory=dict)  # a batch file -> its batch's id
    bad_lines: dict[Path, list[str]] = field(default_factory=dict)  # a refused file's
    added: bool = False  # the files came from File > Add files, not a drop

    @property
    def job_ids(self) -> list[str]:
        return [job_id for _, ids in self.queued for job_id in ids]


def plan_drop(
    paths: Iterable[Path], defaults: Mapping[str, Any], endpoints: Collection[str] = ()
) -> LoadResult:
    """What a drop will queue (whole files only) and what it refuses, with a hint when the
    editor has no model (blocking: run it off the GUI thread). Models of `endpoints`
    (`NAME/MODEL`) run remotely."""
    result = plan(paths, defaults, endpoints=endpoints)
    if "model" not in defaults:
        result.refused[:] = [_no_model(r) for r in result.refused]
    return result


def _no_model(refusal: Refusal) -> Refusal:
    if _model_missing(refusal.reason):  # the other bad lines, if any, stay listed
        others = tuple(p for p in refusal.problems if not _model_missing(p))
        return Refusal(refusal.path, NO_MODEL, others)
    return refusal


def _model_missing(reason: str) -> bool:
    return "'model'" in reason and "required" in reason.lower()


def submit_plan(plan: LoadResult, submit: Callable[[list[JobSpec]], list[str]]) -> DropOutcome:
    """Submit every accepted spec in one call and map the new ids back to their files."""
    outcome = DropOutcome(refused=list(plan.refused))
    outcome.bad_lines.update({r.path: list(r.problems) for r in plan.refused if r.problems})
    specs = plan.specs
    if not specs:
        return outcome
    try:
        ids = submit(specs)
    except ValueError as exc:
        outcome.error = str(exc)
        return outcome
    at = 0
    for source in plan.sources:
        count = len(source.specs)
        outcome.queued.append((source.path, ids[at : at + count]))
        at += count
    return outcome


@dataclass(frozen=True)
class BatchDrop:
    """What became of one dropped OpenAI batch file: a batch, or each problem with it."""

    path: Path
    batch_id: str | None = None
    job_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line 3 field 'body': ...", ...

    def add_to(self, outcome: DropOutcome) -> None:
        if self.batch_id is None:
            count = len(self.problems)
            reason = f"OpenAI batch file not queued: {count} problem{'s' if count != 1 else ''}"
            outcome.refused.append(Refusal(self.path, reason))
            outcome.bad_lines[self.path] = list(self.problems)
        else:
            outcome.queued.append((self.path, list(self.job_ids)))
            outcome.batches[self.path] = self.batch_id


def queue_batch_file(
    client: JobClient, item: BatchFile, defaults: Mapping[str, Any], max_bytes: int
) -> BatchDrop:
    """Make the batch file a batch (its jobs queued in one step), or refuse it with each bad
    line (number, field, reason), nothing queued. Blocking: run it on the client pool."""
    queued = queue_batch_file_in(BatchBook(client), item, defaults, max_bytes)
    if queued.batch is None:
        return BatchDrop(item.path, problems=queued.problems)
    return BatchDrop(item.path, queued.batch.id, queued.job_ids)
