"""One table row's worth of a job: a small Qt-free record, built off the GUI thread."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from worker.jobs.job import Job, JobState
from worker.jobs.target import remote_target

CANCEL_BEFORE_START = "cancelled before it started"


def cancel_text(error: str | None, tokens: int) -> str:
    """How a cancel ended a job, said plainly: it was asked for, it is no error."""
    if error == CANCEL_BEFORE_START:
        return "Cancelled by you before it started."
    if tokens:
        return f"Cancelled by you after {tokens:,} token{'s' if tokens != 1 else ''}."
    return "Cancelled by you before it wrote anything."


@dataclass(frozen=True, slots=True)
class JobRow:
    """What the jobs table shows of a job; progress fields follow the live events."""

    id: str
    seq: int
    state: JobState
    attempt: int
    title: str
    model: str
    priority: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    queue_position: int | None
    max_tokens: int
    error: str | None = None
    cancel_requested: bool = False
    phase: str | None = None  # "loading" | "prompt" | "generating"
    done: int = 0
    total: int = 0
    tps: float | None = None
    eta: float | None = None
    batch: str | None = None  # the batch the job belongs to
    custom_id: str | None = None  # its line's custom_id in that batch
    retry_at: float | None = None  # a remote job waiting for its next try: when it starts
    tries: int = 0
    max_tries: int | None = None
    retry_note: str | None = None
    # While it waits before it runs (an endpoint's slots all busy, its pace): why, and in
    # a few words for the table.
    note: str | None = None
    brief: str | None = None

    @classmethod
    def from_job(cls, job: Job) -> JobRow:
        phase: str | None = None
        done, total = 0, 0
        if job.state is JobState.loading:
            phase = "loading"
        elif job.state is JobState.running or (job.state.finished and job.started_at):
            phase = "generating"
            done, total = job.completion_tokens, job.spec.max_tokens
            if job.state is JobState.succeeded:
                total = max(done, 1)
        origin = job.origin
        return cls(
            id=job.id,
            seq=job.seq,
            state=job.state,
            attempt=job.attempt,
            title=job.title or job.id,
            model=job.model if remote_target(job.model) else Path(job.model).name,
            priority=job.priority,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            queue_position=job.queue_position,
            max_tokens=job.spec.max_tokens,
            error=job.error,
            cancel_requested=job.cancel_requested,
            phase=phase,
            done=done,
            total=total,
            tps=job.tokens_per_second,
            batch=origin.batch if origin is not None else None,
            custom_id=origin.custom_id if origin is not None else None,
            retry_at=job.retry_at,
            tries=job.tries,
            max_tries=job.max_tries,
            retry_note=job.retry_note,
        )

    def merged(self, newer: JobRow) -> JobRow:
        """`newer` (fresh from the ledger), keeping live progress the ledger does not store."""
        if newer.attempt != self.attempt or newer.state != self.state or newer.state.finished:
            return newer
        if newer.state is JobState.loading and self.note:
            return replace(newer, note=self.note, brief=self.brief)
        if newer.state is JobState.running and self.phase == "prompt" and newer.done == 0:
            return replace(newer, phase="prompt", done=self.done, total=self.total, eta=self.eta)
        if newer.state is JobState.running and self.phase == "generating":
            done = max(self.done, newer.done)
            return replace(newer, done=done, total=self.total or newer.total, eta=self.eta)
        return newer

    def with_progress(self, data: dict[str, Any]) -> JobRow | None:
        """This row after a progress event, or None when the event is stale or changes nothing."""
        if int(data.get("attempt", 0)) != self.attempt or self.state.finished:
            return None
        if self.state is JobState.queued:
            return None
        phase = str(data.get("phase") or "")
        if phase == "waiting":  # for a remote endpoint's slot or pace: loading, with why
            note, brief = str(data.get("note") or "") or None, str(data.get("brief") or "")
            return replace(self, phase="loading", done=0, total=0, note=note,
                           brief=brief or note)  # fmt: skip
        if phase not in ("loading", "prompt", "generating"):
            return None
        tps = data.get("tps")
        eta = data.get("eta")
        return replace(
            self,
            phase=phase,
            note=None,
            brief=None,
            done=int(data.get("done") or 0),
            total=int(data.get("total") or 0),
            tps=float(tps) if tps is not None and phase == "generating" else self.tps,
            eta=float(eta) if eta is not None else None,
        )

    @property
    def waiting(self) -> bool:
        """A remote job queued until its next try (after a rate limit or an outage)."""
        return self.state is JobState.queued and self.retry_at is not None

    def waiting_note(self, at: float, *, brief: bool = False) -> str | None:
        """What Job.waiting_note says at time `at`: 'rate limited (429): …, next try in
        12 s (try 3 of 8)'; None unless the job waits for its next try."""
        if not self.waiting:
            return None
        fields: dict[str, Any] = {  # the fields Job.waiting_note reads: its wording, not ours
            "state": self.state,
            "retry_at": self.retry_at,
            "tries": self.tries,
            "max_tries": self.max_tries,
            "retry_note": self.retry_note,
        }
        return Job.model_construct(**fields).waiting_note(at, brief=brief)

    @property
    def fraction(self) -> float | None:
        """Progress in [0, 1], or None when there is none to show."""
        if self.phase is None:
            return None
        if self.phase == "loading":
            return 0.0
        if self.state is JobState.succeeded:
            return 1.0
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def time_left(self) -> float | None:
        """The steady estimate of a generating job's time left (None: none to show)."""
        if self.state is not JobState.running or self.phase != "generating":
            return None
        return self.eta

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        if self.finished_at is not None:
            return max(0.0, self.finished_at - self.started_at)
        return None  # live: the model computes it against the clock

    @property
    def search_text(self) -> str:
        batch = f"{self.batch}\n{self.custom_id or ''}" if self.batch else ""
        return f"{self.title}\n{self.id}\n{self.model}\n{self.error or ''}\n{batch}".casefold()
