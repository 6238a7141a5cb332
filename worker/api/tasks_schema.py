"""The job endpoints' request and response bodies (the classic FastAPI + Celery LLM queue)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.jobs.job import Job, JobState
from worker.jobs.promptformat import check_prompt_format
from worker.jobs.spec import (
    MAX_PROMPT_CHARS,
    MaxTokens,
    Message,
    MinP,
    Priority,
    RepeatPenalty,
    Seed,
    Temperature,
    Timeout,
    TopK,
    TopP,
)


class TaskStatus(StrEnum):
    """Celery's names for a task's state."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @classmethod
    def of(cls, state: JobState) -> TaskStatus:
        return {
            JobState.queued: cls.PENDING,
            JobState.loading: cls.STARTED,
            JobState.running: cls.STARTED,
            JobState.succeeded: cls.SUCCESS,
            JobState.failed: cls.FAILURE,
            JobState.cancelled: cls.REVOKED,
        }[state]


class GenerateRequest(BaseModel):
    """A job, as in a prompt file: unset sampling fields take the queue's defaults, an unset
    model the default model; `model` may be a model's name (GET /v1/models) or a GGUF path."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    messages: list[Message] | None = Field(default=None, max_length=10_000)
    model: str | None = Field(default=None, min_length=1, max_length=4096)
    title: str | None = Field(default=None, max_length=200)
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    min_p: MinP | None = None
    repeat_penalty: RepeatPenalty | None = None
    stop: list[str] | None = Field(default=None, max_length=16)
    seed: Seed | None = None
    priority: Priority | None = None
    timeout: Timeout | None = None
    raw: bool | None = None
    system: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description='System prompt (unset: the settings\'; "": none). A system message in '
        "`messages` wins over it.",
    )
    prompt_format: str | None = Field(
        default=None,
        description="'auto' (the model's chat template, else raw text), 'raw', or a llama.cpp "
        "built-in template such as 'chatml', 'llama3' or 'gemma' (unset: the settings').",
    )
    parent: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The task this one follows up.",
    )

    @field_validator("prompt_format")
    @classmethod
    def _known_prompt_format(cls, value: str | None) -> str | None:
        return None if value is None else check_prompt_format(value)


class Accepted(BaseModel):
    task_id: str
    status_url: str
    stream_url: str


class TaskInfo(BaseModel):
    """A job's state and outcome, with Celery's status name beside PromptSpool's state."""

    task_id: str
    status: TaskStatus
    state: JobState
    title: str
    model: str
    attempt: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    queue_position: int | None = Field(description="1 = next to run; null unless queued.")
    result: str | None = Field(
        description="The output, once the job succeeded (not in GET /tasks: see its status)."
    )
    output: str | None = Field(
        description="The current attempt's text so far: also the partial text of a running, "
        "cancelled or failed job (not in GET /tasks)."
    )
    error: str | None
    batch: str | None = Field(default=None, description="The batch the job belongs to.")

    @classmethod
    def of(cls, job: Job, *, with_output: bool = True) -> TaskInfo:
        """`with_output`: the job was read with its text (lists leave it out)."""
        text = job.output if with_output else None
        return cls(
            task_id=job.id,
            status=TaskStatus.of(job.state),
            state=job.state,
            title=job.title,
            model=job.model,
            attempt=job.attempt,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            queue_position=job.queue_position,
            result=text if job.state is JobState.succeeded else None,
            output=text,
            error=job.error,
            batch=job.origin.batch if job.origin else None,
        )


class TaskPage(BaseModel):
    tasks: list[TaskInfo]
    total: int = Field(description="Jobs that match the filter, on every page.")
    offset: int
    limit: int


class Step(StrEnum):
    queued = "queued"
    loading = "loading"
    prompt = "prompt"
    generating = "generating"
    finished = "finished"


class Progress(BaseModel):
    """How far a job is; one number means one thing (the same as the window shows)."""

    task_id: str
    status: TaskStatus
    state: JobState
    attempt: int
    step: Step
    fraction: float = Field(ge=0, le=1, description="0 to 1: prompt read, then tokens / max.")
    queue_position: int | None
    prompt_tokens_read: int
    prompt_tokens_total: int
    tokens_generated: int
    max_tokens: int
    tokens_per_second: float | None
    eta_seconds: float | None = Field(description="Once the generation rate is steady.")


class CancelResult(BaseModel):
    task_id: str
    cancel: str = Field(description="'cancelled' (it was queued) or 'requested' (it stops).")
    status: TaskStatus


class RetryResult(BaseModel):
    task_id: str
    attempt: int
    status_url: str


class Health(BaseModel):
    status: str = Field(description="'ok', or 'unavailable' when the queue does not answer.")
    queue: bool
    workers: int
