"""The OpenAI files endpoints: upload a batch's input, list, describe, read and delete files."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from worker.api.auth import require_token
from worker.api.context import ApiContext, context
from worker.api.errors import ApiError
from worker.api.openai_schema import ErrorBody
from worker.queue.batches.files import MAX_BYTES, FileStore, StoredFile, UnknownFile

Ctx = Annotated[ApiContext, Depends(context)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 503)
}
MAX_ID = 200  # longer ids name no file
FORM_FIELDS = ("file", "purpose")

router = APIRouter(
    prefix="/v1", tags=["files"], dependencies=[Depends(require_token)], responses=ERRORS
)


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[StoredFile]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def store(ctx: ApiContext) -> FileStore:
    return FileStore(ctx.client.redis)


def not_found(file_id: str, param: str = "file_id") -> ApiError:
    return ApiError(404, f"no file with id {file_id[:MAX_ID]!r}", param=param, code="not_found")


def _stored(ctx: ApiContext, file_id: str) -> StoredFile:
    if len(file_id) > MAX_ID:
        raise not_found(file_id)
    try:
        return store(ctx).get(file_id)
    except UnknownFile as exc:
        raise not_found(file_id) from exc


@router.post("/files", response_model=StoredFile)
async def upload_file(
    request: Request,
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="A batch's requests, one JSON line each.")],
    purpose: Annotated[str, Form(description="Only 'batch'.")],
) -> StoredFile:
    """Upload a batch's input file (JSONL). Its lines are checked when a batch is created
    from it; it is kept until deleted."""
    form = await request.form()
    for name in form:
        if name not in FORM_FIELDS:
            raise ApiError(400, f"{name}: not supported here (a file takes file and purpose)",
                           param=name, code="unknown_parameter")  # fmt: skip
    if purpose != "batch":
        raise ApiError(400, f"purpose {purpose[:50]!r} is not supported (only 'batch')",
                       param="purpose")  # fmt: skip
    limit = min(int(ctx.settings.http_max_upload_mb * 1_000_000), MAX_BYTES)
    data = await file.read(limit + 1)
    if len(data) > limit:
        message = f"the file is larger than {limit / 1_000_000:g} MB (setting http_max_upload_mb)"
        raise ApiError(413, message, param="file", code="file_too_large")
    name = file.filename or "upload.jsonl"
    return await run_in_threadpool(store(ctx).add, data, name, "batch")


@router.get("/files", response_model=FileList)
def list_files(
    ctx: Ctx,
    purpose: Annotated[Literal["batch", "batch_output"] | None, Query()] = None,
    after: Annotated[str | None, Query(description="The last id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Annotated[Literal["asc", "desc"], Query(description="By upload time.")] = "desc",
) -> FileList:
    """The files, newest first (or oldest with order=asc), a page at a time."""
    try:
        files, more = store(ctx).page(purpose=purpose, after=after, limit=limit,
                                      newest_first=order == "desc")  # fmt: skip
    except UnknownFile as exc:
        raise not_found(exc.file_id, "after") from exc
    first, last = (files[0].id, files[-1].id) if files else (None, None)
    return FileList(data=files, first_id=first, last_id=last, has_more=more)


@router.get("/files/{file_id}", response_model=StoredFile)
def get_file(file_id: str, ctx: Ctx) -> StoredFile:
    return _stored(ctx, file_id)


@router.get(
    "/files/{file_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}},
                     "description": "The file as it was stored (JSONL)."}},
)  # fmt: skip
def file_content(file_id: str, ctx: Ctx) -> Response:
    """The file's bytes: a batch's input, or its output or error file."""
    stored = _stored(ctx, file_id)
    try:
        data = store(ctx).content(file_id)
    except UnknownFile as exc:  # deleted meanwhile
        raise not_found(file_id) from exc
    disposition = "attachment; filename*=UTF-8''" + quote(stored.filename, safe="")
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": disposition})  # fmt: skip


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, ctx: Ctx) -> FileDeleted:
    """Delete a file (a batch that has not read it yet then fails, naming it)."""
    _stored(ctx, file_id)
    try:
        store(ctx).delete(file_id)
    except UnknownFile as exc:
        raise not_found(file_id) from exc
    return FileDeleted(id=file_id, deleted=True)
