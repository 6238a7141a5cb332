"""The bearer-token dependency every endpoint but /health takes (and the token's rate limit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.api.context import ApiContext, context
from worker.api.errors import ApiError

_bearer = HTTPBearer(
    auto_error=False,
    description="The token that `promptspool token` prints (kept in the config folder, 0600).",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ctx: Annotated[ApiContext, Depends(context)],
) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` with the current token;
    then 429 if the token is over http_rate_limit_rpm. Only requests with the right token
    count, so nobody without it can use up its budget. A plain `def`: FastAPI runs it in its
    threadpool, where the limiter's (blocking) call to the queue holds up no other request.
    A streamed answer counts once, here, when it starts."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                       "(`promptspool token` prints it)", code="missing_token",
                       headers=_CHALLENGE)  # fmt: skip
    if not ctx.tokens.matches(credentials.credentials):
        raise ApiError(401, "wrong bearer token (`promptspool token` prints the current one)",
                       code="invalid_api_key", headers=_CHALLENGE)  # fmt: skip
    request.state.authorized = True
    if ctx.limiter is not None:
        ctx.limiter.check(credentials.credentials)
