"""The OpenAI batch endpoints: create a batch from an uploaded file, follow it, list, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.api.auth import require_token
from worker.api.context import ApiContext, context
from worker.api.errors import ApiError
from worker.api.openai_schema import ErrorBody
from worker.jobs.openai_shape import Endpoint
from worker.queue.batches.book import MAX_METADATA, BatchBook, BatchRefused, BatchStateError
from worker.queue.batches.record import Batch
from worker.queue.batches.store import UnknownBatch

Ctx = Annotated[ApiContext, Depends(context)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 503)
}
MAX_ID = 200  # longer ids name no batch

router = APIRouter(
    prefix="/v1", tags=["batches"], dependencies=[Depends(require_token)], responses=ERRORS
)


class BatchCreate(BaseModel):
    """A batch of the requests in an uploaded file (purpose 'batch'), one JSON line each."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1, max_length=MAX_ID)
    endpoint: Endpoint = Field(description="The url of every line of the file.")
    completion_window: Literal["24h"] = Field(
        description="Unfinished requests are cancelled this long after the batch was created."
    )
    metadata: dict[str, str] | None = Field(
        default=None, description="Up to 16 keys (64 characters) and values (512 characters)."
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_in_bounds(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > MAX_METADATA:
            raise ValueError(f"at most {MAX_METADATA} keys (got {len(value)})")
        for key, item in value.items():
            if len(key) > 64:
                raise ValueError(f"the key {key[:20]!r}… is longer than 64 characters")
            if len(item) > 512:
                raise ValueError(f"the value of {key!r} is longer than 512 characters")
        return value


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool


def book(ctx: Ctx) -> BatchBook:
    """The batches of the server's queue (jobs submitted through the shared producer)."""
    return BatchBook(ctx.client, submit=ctx.submit)


Book = Annotated[BatchBook, Depends(book)]


@contextmanager
def _refusals(param: str = "batch_id") -> Iterator[None]:
    """The book's refusals as API errors: unknown batch 404, wrong status 409, bad field 400."""
    try:
        yield
    except UnknownBatch as exc:
        raise ApiError(404, str(exc), param=param, code="not_found") from exc
    except BatchStateError as exc:
        raise ApiError(409, str(exc), param=param, code="invalid_status") from exc
    except BatchRefused as exc:
        status = 404 if exc.code == "file_not_found" else 400
        raise ApiError(status, exc.message, param=exc.param, code=exc.code) from exc


def _known(batch_id: str) -> str:
    if len(batch_id) > MAX_ID:
        raise ApiError(404, f"no batch with id {batch_id[:MAX_ID]!r}…", param="batch_id",
                       code="not_found")  # fmt: skip
    return batch_id


@router.post("/batches", response_model=Batch)
def create_batch(body: BatchCreate, batches: Book, ctx: Ctx) -> Batch:
    """Check the file line by line and queue all its requests in one step: the batch comes
    back `in_progress`, or `failed` with `errors` naming each bad line and field (nothing is
    queued then). Its output file has one line per answered request, in the file's order;
    failed and cancelled requests go to its error file."""
    with _refusals():
        return batches.create(
            body.input_file_id,
            body.endpoint,
            completion_window=body.completion_window,
            metadata=body.metadata,
            defaults=ctx.settings.job_defaults(),
        )


@router.get("/batches", response_model=BatchList)
def list_batches(
    batches: Book,
    after: Annotated[str | None, Query(description="The last id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchList:
    """Batches, newest first, a page at a time."""
    with _refusals("after"):
        found, more = batches.page(after, limit)
    first, last = (found[0].id, found[-1].id) if found else (None, None)
    return BatchList(data=found, first_id=first, last_id=last, has_more=more)


@router.get("/batches/{batch_id}", response_model=Batch)
def get_batch(batch_id: str, batches: Book) -> Batch:
    """The batch with its live request counts."""
    with _refusals():
        return batches.get(_known(batch_id))


@router.post("/batches/{batch_id}/cancel", response_model=Batch)
def cancel_batch(batch_id: str, batches: Book) -> Batch:
    """Cancel the batch's unfinished requests: `cancelling` while running ones stop (within
    a token), then `cancelled`; what was answered is in its output file."""
    with _refusals():
        return batches.cancel(_known(batch_id))
