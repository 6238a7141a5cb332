"""The OpenAI-compatible endpoints: models, chat completions and completions, streamed or not.

Each request is a job like any other: it is queued, batched with the rest, shown in the window
and cancellable there; a client that goes away cancels its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from worker.api.auth import require_token
from worker.api.context import ApiContext, context
from worker.api.errors import ApiError
from worker.api.follow import ends_current_attempt, job_events
from worker.api.openai_schema import ChatCompletion, Completion, ErrorBody, ModelList, ModelObject
from worker.jobs.job import Job, JobOrigin, JobState
from worker.jobs.openai_shape import (
    ChatCompletionRequest,
    CompletionRequest,
    OpenAIRequest,
    RequestRefused,
    chunk,
    error_of,
    finish_reason,
    response_body,
    to_job,
    usage_chunk,
)
from worker.jobs.spec import JobSpec
from worker.queue.ledger import JobStateError, UnknownJobError

Ctx = Annotated[ApiContext, Depends(context)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 500, 503)
}
CLIENT_GONE = 499  # the status nginx logs for a client that closed the connection first
STREAMED = {"content": {"text/event-stream": {}}, "description": "With stream=true."}

router = APIRouter(
    prefix="/v1", tags=["openai"], dependencies=[Depends(require_token)], responses=ERRORS
)


@router.get("/models", response_model=ModelList)
def list_models(ctx: Ctx) -> ModelList:
    """The models jobs may name: the default model and the GGUF files in the model folders."""
    return ModelList(data=[ModelObject(id=e.name, created=int(e.modified)) for e in ctx.models()])


@router.get("/models/{model}", response_model=ModelObject)
def get_model(model: str, ctx: Ctx) -> ModelObject:
    for entry in ctx.models():
        if entry.name == model:
            return ModelObject(id=entry.name, created=int(entry.modified))
    raise ApiError(404, f"model {model!r} does not exist", param="model", code="model_not_found")


@router.post("/chat/completions", response_model=ChatCompletion, responses={200: STREAMED})
async def chat_completions(
    body: ChatCompletionRequest, request: Request, ctx: Ctx
) -> JSONResponse | EventSourceResponse:
    """A chat completion, as a job; streamed as chat.completion.chunk events with stream=true."""
    return await _complete(body, request, ctx)


@router.post("/completions", response_model=Completion, responses={200: STREAMED})
async def completions(
    body: CompletionRequest, request: Request, ctx: Ctx
) -> JSONResponse | EventSourceResponse:
    """A plain completion of the prompt (no chat template), as a job."""
    return await _complete(body, request, ctx)


def _job_of(ctx: ApiContext, body: OpenAIRequest) -> tuple[JobSpec, JobOrigin]:
    settings = ctx.settings
    try:
        return to_job(
            body,
            defaults=settings.job_defaults(),
            resolve_model=settings.resolve_model,
        )
    except RequestRefused as exc:
        status = 404 if exc.code == "model_not_found" else 400
        raise ApiError(status, exc.message, param=exc.param, code=exc.code) from exc


async def _complete(
    body: OpenAIRequest, request: Request, ctx: Ctx
) -> JSONResponse | EventSourceResponse:
    spec, origin = await run_in_threadpool(_job_of, ctx, body)
    (job_id,) = await run_in_threadpool(ctx.submit, [spec], [origin])
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _stream(ctx, job_id, origin, include_usage)
        return EventSourceResponse(events, ping=15, send_timeout=30)
    job = await _wait_or_cancel(ctx, job_id, request)
    if job is None:  # the client went away and its job was cancelled: nobody to answer
        return JSONResponse({}, status_code=CLIENT_GONE)
    if job.state is JobState.succeeded:
        return JSONResponse(response_body(job))
    error = error_of(job)
    status = 409 if job.state is JobState.cancelled else 500
    raise ApiError(status, f"job {job_id}: {error['message']}", code=error["code"])


async def _wait_or_cancel(ctx: ApiContext, job_id: str, request: Request) -> Job | None:
    """The job once its current attempt ended; None if the client disconnected first, and
    then the job is cancelled."""
    finished = asyncio.create_task(_finished(ctx, job_id))
    gone = asyncio.create_task(_disconnected(request))
    try:
        done, _ = await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
        if finished in done:
            return await run_in_threadpool(ctx.client.get, job_id)
        await run_in_threadpool(_cancel_quietly, ctx, job_id)
        return None
    finally:
        for task in (finished, gone):
            task.cancel()


async def _finished(ctx: ApiContext, job_id: str) -> None:
    async for event in job_events(ctx.aredis, job_id):
        if await ends_current_attempt(ctx.aredis, job_id, event):
            return


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body was read already: only a disconnect is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _cancel_quietly(ctx: ApiContext, job_id: str) -> None:
    with contextlib.suppress(JobStateError, UnknownJobError):  # it ended (or was cleared)
        ctx.client.cancel(job_id)


async def _stream(
    ctx: ApiContext, job_id: str, origin: JobOrigin, include_usage: bool
) -> AsyncIterator[dict[str, str]]:
    """The job's text as OpenAI stream chunks, then `[DONE]`. A client that goes away
    (the generator is closed) cancels the job."""
    shape, model, created = origin.shape, origin.model_name or "", int(time.time())
    first_attempt: int | None = None
    done = False
    try:
        yield _data(chunk(job_id, shape, model, created, text="", role=True))
        async for event in job_events(ctx.aredis, job_id):
            if first_attempt is None and event.attempt:
                first_attempt = event.attempt
            if event.type == "tokens" and event.attempt == first_attempt:
                text = str(event.data.get("text", ""))
                yield _data(chunk(job_id, shape, model, created, text=text))
                continue
            state = event.state
            if (
                event.type == "state"
                and state is JobState.queued
                and event.attempt != first_attempt
            ):
                # Its worker was lost mid-stream: what was sent cannot be taken back.
                done = True
                message = f"job {job_id}: the worker running it was lost and the job runs again; "
                message += f"follow it at /tasks/{job_id}/stream"
                error = {"message": message, "type": "server_error", "param": None,
                         "code": "job_requeued"}  # fmt: skip
                yield _data({"error": error})
                return
            if state is None or not await ends_current_attempt(ctx.aredis, job_id, event):
                continue
            done = True
            job = await run_in_threadpool(ctx.client.get, job_id, with_output=False)
            if state is not JobState.succeeded:
                yield _data({"error": error_of(job)})
                return
            yield _data(chunk(job_id, shape, model, created, finish=finish_reason(job)))
            if include_usage:
                yield _data(usage_chunk(job, shape, model, created))
            yield {"data": "[DONE]"}
            return
    finally:
        if not done:  # the client went away: this task is being cancelled, so shield the call
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_cancel_quietly, ctx, job_id)


def _data(payload: dict[str, Any]) -> dict[str, str]:
    return {"data": json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}
