"""The job endpoints: submit, status, progress, a live SSE stream, cancel, retry, list, health."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse

from worker.api.auth import require_token
from worker.api.context import ApiContext, context
from worker.api.errors import ApiError
from worker.api.follow import ends_current_attempt, has_events_after, job_events, valid_stream_id
from worker.api.tasks_schema import (
    Accepted,
    CancelResult,
    GenerateRequest,
    Health,
    Progress,
    RetryResult,
    Step,
    TaskInfo,
    TaskPage,
    TaskStatus,
)
from worker.jobs.job import Job, JobOrigin, JobState
from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.eta import STEADY_TOKENS
from worker.queue.events import Event
from worker.queue.ledger import UnknownJobError

Ctx = Annotated[ApiContext, Depends(context)]
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # no ':', which would name another key of the job


def _refusal(description: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """A refusal's documentation: FastAPI's body, {"detail": message}."""
    schema = {"type": "object", "required": ["detail"],
              "properties": {"detail": detail or {"type": "string"}}}  # fmt: skip
    return {"description": description, "content": {"application/json": {"schema": schema}}}


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: _refusal("No token, or not the current one.")}
UNKNOWN_TASK: Responses = {404: _refusal("No such task.")}
CONFLICT: Responses = {409: _refusal("The task is not in a state that allows this.")}

public = APIRouter(tags=["health"])
router = APIRouter(tags=["jobs"], dependencies=[Depends(require_token)], responses=UNAUTHORIZED)


@public.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The queue does not answer."}},
)
def health(ctx: Ctx, response: Response) -> Health:
    """Whether the API and the queue answer, and how many workers are alive (no token)."""
    try:
        workers = len(ctx.client.workers())
    except redis.RedisError:
        response.status_code = 503
        return Health(status="unavailable", queue=False, workers=0)
    return Health(status="ok", queue=True, workers=workers)


def _urls(request: Request, job_id: str) -> tuple[str, str]:
    status = str(request.url_for("task_status", task_id=job_id))
    return status, str(request.url_for("task_stream", task_id=job_id))


@router.post(
    "/generate",
    response_model=Accepted,
    status_code=202,
    responses={
        400: _refusal("The body cannot be read (it is not UTF-8 text)."),
        404: _refusal("No such model; the message names the known ones."),
        422: _refusal(
            "An invalid job: FastAPI's list of field errors, or one message about the job as a "
            "whole (no prompt, both prompt and messages, a model file that is no GGUF).",
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        ),
    },
)
def generate(body: GenerateRequest, request: Request, response: Response, ctx: Ctx) -> Accepted:
    """Queue one job; answers at once with its id and where to follow it."""
    fields = {**ctx.settings.job_defaults(), **body.model_dump(exclude_none=True)}
    if body.model is not None or "model" not in fields:
        fields["model"] = str(ctx.model_path(body.model))
    spec = JobSpec.model_validate(fields)
    origin = JobOrigin(via="api", model_name=body.model)
    try:
        (job_id,) = ctx.submit([spec], [origin])
    except ValueError as exc:  # the model file is no GGUF, or a damaged one
        raise ApiError(422, str(exc), param="model", code="invalid_model") from exc
    status_url, stream_url = _urls(request, job_id)
    response.headers["Location"] = status_url
    return Accepted(task_id=job_id, status_url=status_url, stream_url=stream_url)


def _job(ctx: ApiContext, job_id: str, *, with_output: bool) -> Job:
    if not JOB_ID.fullmatch(job_id):
        raise UnknownJobError(job_id[:64] + ("…" if len(job_id) > 64 else ""))
    return ctx.client.get(job_id, with_output=with_output)


@router.get("/tasks", response_model=TaskPage)
def list_tasks(
    ctx: Ctx,
    state: Annotated[list[JobState] | None, Query(description="Only jobs in these states.")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TaskPage:
    """Jobs in submission order, a page at a time."""
    jobs, total = ctx.client.ledger.page(state, offset, limit)
    tasks = [TaskInfo.of(job, with_output=False) for job in jobs]
    return TaskPage(tasks=tasks, total=total, offset=offset, limit=limit)


@router.get(
    "/tasks/{task_id}/status", response_model=TaskInfo, name="task_status", responses=UNKNOWN_TASK
)
def task_status(task_id: str, ctx: Ctx) -> TaskInfo:
    """The job's state, with its result once it succeeded or its error once it failed."""
    return TaskInfo.of(_job(ctx, task_id, with_output=True))


@router.get("/tasks/{task_id}/progress", response_model=Progress, responses=UNKNOWN_TASK)
def task_progress(task_id: str, ctx: Ctx) -> Progress:
    """Where the job is: queue position, loading, prompt tokens read, tokens generated, rate."""
    job = _job(ctx, task_id, with_output=False)
    latest = _latest_progress(ctx, job)
    return progress_of(job, latest)


def _latest_progress(ctx: ApiContext, job: Job) -> dict[str, Any]:
    """The newest progress or tokens event of the job's current attempt ({} if none)."""
    if job.state is JobState.queued:
        return {}
    entries: Any = ctx.client.redis.xrevrange(keys.events(job.id), count=64)
    for _, fields in entries:
        data = json.loads(fields.get(b"d", fields.get("d")))
        if data.get("attempt") == job.attempt and data.get("type") in ("progress", "tokens"):
            return dict(data)
    return {}


def progress_of(job: Job, latest: dict[str, Any]) -> Progress:
    """The job's progress from its record and its newest progress event."""
    max_tokens = job.spec.max_tokens
    phase = latest.get("phase") or ("generating" if latest.get("type") == "tokens" else None)
    generated = job.completion_tokens
    prompt_read = prompt_total = job.prompt_tokens
    step = Step.queued
    if job.state.finished:
        step = Step.finished
    elif job.state is JobState.loading or phase == "loading":
        step, prompt_read = Step.loading, 0
    elif job.state is JobState.running:
        step = Step.generating if phase == "generating" else Step.prompt
        if step is Step.prompt:
            prompt_read = int(latest.get("done", 0))
            prompt_total = int(latest.get("total", job.prompt_tokens))
        else:
            generated = max(generated, int(latest.get("done", 0)))
    tps = latest.get("tps") if step is Step.generating else job.tokens_per_second
    eta = latest.get("eta") if step is Step.generating and generated >= STEADY_TOKENS else None
    fraction = 1.0 if job.state.finished else min(1.0, generated / max_tokens)
    return Progress(
        task_id=job.id,
        status=TaskStatus.of(job.state),
        state=job.state,
        attempt=job.attempt,
        step=step,
        fraction=fraction,
        queue_position=job.queue_position,
        prompt_tokens_read=prompt_read,
        prompt_tokens_total=prompt_total,
        tokens_generated=generated,
        max_tokens=max_tokens,
        tokens_per_second=float(tps) if tps is not None else None,
        eta_seconds=float(eta) if eta is not None else None,
    )


@router.get(
    "/tasks/{task_id}/stream",
    name="task_stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "Server-Sent Events: progress, token, complete, error."},
               204: {"description": "The task has finished and no event follows Last-Event-ID "
                                    "(an EventSource then stops reconnecting)."},
               400: _refusal("Last-Event-ID is not an event id."), **UNKNOWN_TASK},
)  # fmt: skip
async def task_stream(
    task_id: str,
    ctx: Ctx,
    last_event_id: Annotated[str | None, Header(description="Resume after this event.")] = None,
) -> Response:
    """The job's events as Server-Sent Events: what its current attempt produced so far, then
    live, until that attempt ends. `progress`, `token`, `complete` and `error` events; each
    has an id, so a client that reconnects with `Last-Event-ID` misses nothing and repeats
    nothing; 204 once the task has finished and nothing follows that id. Each event names its
    attempt: a task whose worker was lost starts over as the next attempt, whose text replaces
    the earlier one's."""
    after = last_event_id or "0-0"
    if not valid_stream_id(after):
        raise ApiError(400, f"Last-Event-ID {after[:50]!r} is not an event id of this stream",
                       param="Last-Event-ID")  # fmt: skip
    job = await run_in_threadpool(_job, ctx, task_id, with_output=False)  # 404 before streaming
    if job.state.finished and not await has_events_after(ctx.aredis, task_id, after):
        return Response(status_code=204)  # else a client resuming after the end waits forever
    # From the start, a retried job's stream is its current attempt's: not the text of each.
    first = job.attempt if last_event_id is None else 0
    return EventSourceResponse(_sse(ctx, task_id, after, first), ping=15, send_timeout=30)


async def _sse(
    ctx: ApiContext, job_id: str, after: str, first_attempt: int = 0
) -> AsyncIterator[dict[str, str]]:
    """The SSE messages of the job's events after `after`, from attempt `first_attempt` on,
    until its current attempt ends."""
    async for event in job_events(ctx.aredis, job_id, after):
        if 0 < event.attempt < first_attempt:
            continue
        message = sse_message(event)
        if message is not None:
            yield message
        if event.type == "forgotten" or await ends_current_attempt(ctx.aredis, job_id, event):
            return


def sse_message(event: Event) -> dict[str, str] | None:
    """One job event as an SSE message (None: not one a client needs)."""
    data = event.data
    base = {"task_id": event.job_id, "attempt": event.attempt}
    if event.type == "tokens":
        payload: dict[str, Any] = {**base, "text": data.get("text", ""),
                                   "tokens_generated": data.get("done"),
                                   "tokens_per_second": data.get("tps")}  # fmt: skip
        return _message("token", event.id, payload)
    if event.type == "progress":
        payload = {**base, "step": data.get("phase"), "done": data.get("done"),
                   "total": data.get("total"), "tokens_per_second": data.get("tps")}  # fmt: skip
        return _message("progress", event.id, payload)
    state = event.state
    if state is None:
        return None
    status = TaskStatus.of(state)
    if state is JobState.succeeded:
        return _message("complete", event.id, {**base, "status": status, "state": state})
    if state.finished:
        error = data.get("error") or ("cancelled" if state is JobState.cancelled else "failed")
        payload = {**base, "status": status, "state": state, "error": error}
        return _message("error", event.id, payload)
    return _message("progress", event.id, {**base, "step": state.value, "status": status})


def _message(kind: str, event_id: str, payload: dict[str, Any]) -> dict[str, str]:
    return {"event": kind, "id": event_id, "data": json.dumps(payload, ensure_ascii=False)}


@router.post(
    "/tasks/{task_id}/cancel", response_model=CancelResult, responses={**UNKNOWN_TASK, **CONFLICT}
)
def cancel_task(task_id: str, ctx: Ctx) -> CancelResult:
    """Cancel a queued job at once, or stop a running one within a token (its output kept)."""
    _job(ctx, task_id, with_output=False)
    result = ctx.client.cancel(task_id)
    job = ctx.client.get(task_id, with_output=False)
    return CancelResult(task_id=task_id, cancel=result, status=TaskStatus.of(job.state))


@router.post(
    "/tasks/{task_id}/retry", response_model=RetryResult, status_code=202,
    responses={**UNKNOWN_TASK, **CONFLICT},
)  # fmt: skip
def retry_task(task_id: str, request: Request, ctx: Ctx) -> RetryResult:
    """Queue a finished job again as a new attempt (earlier attempts stay viewable)."""
    _job(ctx, task_id, with_output=False)
    attempt = ctx.retry(task_id)
    return RetryResult(task_id=task_id, attempt=attempt, status_url=_urls(request, task_id)[0])
