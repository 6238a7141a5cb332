"""The FastAPI application: its routers, the Host guard, CORS when asked, and the body limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker import __version__
from worker.api import batches, errors, files, openai_routes, tasks
from worker.api.context import ApiContext
from worker.api.errors import error_body
from worker.api.guard import HostGuard, allowed_hosts
from worker.queue.batches.keeper import BatchKeeper

DESCRIPTION = """\
A durable queue of LLM jobs on this machine. Hand over a job in milliseconds, follow its
progress and tokens as they stream, cancel or retry it; or speak the OpenAI API (completions,
chat completions, files and batches). Every endpoint but `/health` needs
`Authorization: Bearer <token>`; `promptspool token` prints the token.
"""


class BodyLimit:
    """413 for a request whose body is larger than the limit, whether it says so in
    Content-Length or not; nothing of it is read past the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        path = str(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(scope, receive, send, path)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(413, self._message())
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send, path)

    def _message(self) -> str:
        mb = self.max_bytes / 1_000_000
        return f"the request body is larger than {mb:g} MB (setting http_max_upload_mb)"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        body = error_body(path, 413, self._message(), code=_TooLarge.code)
        await JSONResponse(body, status_code=413)(scope, receive, send)


class _TooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on to the 413 handler
    (anything else raised while it reads the body becomes a 400)."""

    code = "request_too_large"


def create_app(ctx: ApiContext) -> FastAPI:
    """The API over one queue; `ctx` is closed when the app shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        keeper = BatchKeeper(ctx.address, ctx.settings)  # batches move on with nobody asking
        keeper.start()
        try:
            yield
        finally:
            await asyncio.to_thread(keeper.stop)
            await ctx.aclose()

    # The docs pages with their scripts served from the package: no CDN, works offline.
    app = FastAPIOffline(
        title="PromptSpool",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(tasks.public)
    app.include_router(tasks.router)
    app.include_router(openai_routes.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    settings = ctx.settings
    if settings.http_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http_cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    app.add_middleware(BodyLimit, max_bytes=int(settings.http_max_upload_mb * 1_000_000))
    app.add_middleware(HostGuard, hosts=allowed_hosts(settings))
    return app
