"""Refusals as bodies: OpenAI's `{"error": {...}}` under /v1, FastAPI's `{"detail"}` elsewhere."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from worker.jobs.validation import describe_validation_error, error_message
from worker.queue.connection import QueueUnavailable, is_queue_outage
from worker.queue.ledger import JobStateError, UnknownJobError

log = logging.getLogger(__name__)

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class ApiError(Exception):
    """A refusal with its HTTP status, the field it is about, and OpenAI's error code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def error_body(
    path: str, status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    if not path.startswith("/v1/"):
        return {"detail": message}
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _respond(
    request: Request,
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(request.url.path, status, message, param, code)
    return JSONResponse(body, status_code=status, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'messages', 0, 'role') -> 'messages[0].role'."""
    text = ""
    for part in loc:
        if part in ("body", "query", "path") and not text:
            continue
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def install(app: FastAPI) -> None:
    """Every refusal in the shape its caller expects; an outage of the queue is a 503."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(request, exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        headers = getattr(exc, "headers", None)
        code = getattr(exc, "code", None)  # the body limit's
        return _respond(request, exc.status_code, message, code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_with_hint(e, _body_model(request)) for e in exc.errors()]
        if not request.url.path.startswith("/v1/"):
            detail = [{**e, "field": field_path(e.get("loc", ()))} for e in errors]
            return JSONResponse({"detail": _plain(detail)}, status_code=422)
        first = errors[0] if errors else {}
        param = field_path(first.get("loc", ())) or None
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        if param:
            message = f"{param}: {message}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return _respond(request, 400, message, param, "invalid_value")

    @app.exception_handler(ValidationError)
    async def invalid_spec(request: Request, exc: ValidationError) -> JSONResponse:
        status = 400 if request.url.path.startswith("/v1/") else 422
        return _respond(request, status, describe_validation_error(exc), code="invalid_value")

    @app.exception_handler(UnknownJobError)
    async def unknown_job(request: Request, exc: UnknownJobError) -> JSONResponse:
        return _respond(request, 404, str(exc), code="not_found")

    @app.exception_handler(JobStateError)
    async def wrong_state(request: Request, exc: JobStateError) -> JSONResponse:
        return _respond(request, 409, str(exc), code="conflict")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, QueueUnavailable) or is_queue_outage(exc):
            message = f"the queue is not answering right now ({exc}); try again shortly"
            return _respond(request, 503, message, code="queue_unavailable",
                            headers={"Retry-After": "1"})  # fmt: skip
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _respond(request, 500, f"internal error: {exc!r}", code="internal_error")


def _body_model(request: Request) -> type[BaseModel] | None:
    """The model the route reads its JSON body as, if it has one."""
    body = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body, "field_info", None), "annotation", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _with_hint(error: Any, model: type[BaseModel] | None) -> Any:
    """An unknown field's error says so, naming the nearest known field when one is close."""
    if not isinstance(error, dict) or error.get("type") != "extra_forbidden":
        return error
    loc = tuple(error.get("loc", ()))
    inside = loc[1:] if loc[:1] == ("body",) else loc
    return {**error, "msg": error_message({**error, "loc": inside}, model)}


def _plain(value: Any) -> Any:
    """Validation details as JSON (pydantic may put exceptions in 'ctx')."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
