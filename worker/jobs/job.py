"""A job as the ledger records it: its spec, state, attempts, output and token counts."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from worker.jobs.spec import JobSpec


class JobState(StrEnum):
    queued = "queued"
    loading = "loading"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def active(self) -> bool:
        return self in (JobState.loading, JobState.running)


FINISHED_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})


def new_job_id() -> str:
    """A short, unique, shell-friendly id."""
    return uuid.uuid4().hex[:12]


def now() -> float:
    return time.time()


class JobOrigin(BaseModel):
    """Where a job came from, and the shape its answer is owed in: an OpenAI request's
    object and model name, and the batch line it answers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    via: str | None = Field(default=None, description="The door: api, openai, batch, ...")
    shape: Literal["chat.completion", "text_completion"] | None = None
    model_name: str | None = Field(default=None, description="The model as the caller named it.")
    batch: str | None = Field(default=None, description="The batch this job belongs to.")
    custom_id: str | None = Field(default=None, description="Its line's custom_id in the batch.")


class RunRecord(BaseModel):
    """What one run produced: times, output, error and token counts."""

    model_config = ConfigDict(extra="ignore")

    started_at: float | None = None
    finished_at: float | None = None
    output: str = ""
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_second: float | None = None
    worker: str | None = None
    finish_reason: str | None = Field(
        default=None, description="Why generation stopped: stop, length or context."
    )


class Attempt(RunRecord):
    """One run of a job; retries and lost workers each add one."""

    number: int
    state: JobState


class Job(RunRecord):
    """A job with its current attempt's record flattened on top, as `show --json` prints it."""

    id: str
    spec: JobSpec
    state: JobState
    attempt: int = 1
    seq: int = 0
    created_at: float
    cancel_requested: bool = False
    queue_position: int | None = Field(default=None, description="1 = next to run.")
    attempts: list[Attempt] = Field(default_factory=list)
    origin: JobOrigin | None = None
    retry_at: float | None = Field(
        default=None,
        description="A remote job waiting out a rate limit or an outage: when its next try "
        "starts (epoch s).",
    )
    tries: int = Field(default=0, description="Tries a remote endpoint has interrupted so far.")
    max_tries: int | None = Field(default=None, description="Tries before it fails.")
    retry_note: str | None = Field(default=None, description="Why it waits for its next try.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def model(self) -> str:
        return self.spec.model

    @computed_field  # type: ignore[prop-decorator]
    @property
    def title(self) -> str:
        return self.spec.display_title

    @computed_field  # type: ignore[prop-decorator]
    @property
    def priority(self) -> str:
        return self.spec.priority.value

    def waiting_note(self, at: float | None = None, *, brief: bool = False) -> str | None:
        """'rate limited, next try in 12 s (try 3 of 8)' while a remote job waits out a
        rate limit or an outage (queued with `retry_at`); else None. `brief`: 'next try in
        12 s (3/8)', for a narrow column."""
        if self.state is not JobState.queued or self.retry_at is None:
            return None
        left = max(0, round(self.retry_at - (now() if at is None else at)))
        if brief:
            of = f"/{self.max_tries}" if self.max_tries else ""
            return f"next try in {left} s ({self.tries + 1}{of})"
        of = f" of {self.max_tries}" if self.max_tries else ""
        return f"{self.retry_note or 'waiting'}, next try in {left} s (try {self.tries + 1}{of})"

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else now()
        return max(0.0, end - self.started_at)
