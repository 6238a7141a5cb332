"""`promptspool api`: the HTTP API's process, on uvicorn; says where it listens once it does."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from worker.api.app import create_app
from worker.api.context import ApiContext
from worker.api.guard import check_bind, is_loopback
from worker.api.info import api_url, info_file, remove_api_info, write_api_info
from worker.queue.events import announce
from worker.settings import Settings

OPEN_FILES_WANTED = 65_536


class ApiStartError(RuntimeError):
    """The API cannot listen (the port is taken, a certificate cannot be read, ...)."""


def raise_open_file_limit(wanted: int = OPEN_FILES_WANTED) -> int | None:
    """Raise this process's soft limit of open files towards `wanted` (within the hard limit);
    the limit now, None where there is none to raise. Each SSE stream holds two descriptors
    (its client's socket and a connection to the queue): at the usual soft limit of 1024 the
    API refused every client past about 500 open streams."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    goal = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < goal:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (goal, hard))
        except (ValueError, OSError):  # a system maximum below the hard limit (macOS)
            return soft
        return goal
    return soft


def run_api(settings: Settings, url: str | None = None) -> int:
    """Serve the API until SIGINT/SIGTERM. BindRefused / ApiStartError say why it cannot."""
    tls = check_bind(settings)
    if not tls and not is_loopback(settings.http_host):  # allowed by http_insecure: say so
        print(f"promptspool: warning: the HTTP API serves plain HTTP on {settings.http_host}; "
              "anyone on the network can read the token and the prompts (http_insecure)",
              file=sys.stderr, flush=True)  # fmt: skip
    raise_open_file_limit()
    settings.paths.ensure()
    ctx = ApiContext.create(settings, url)
    ctx.tokens.read()  # made now, so `promptspool token` and the first client agree
    app = create_app(ctx)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        ssl_certfile=settings.http_tls_cert,
        ssl_keyfile=settings.http_tls_key,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = uvicorn.Server(config)
    where_file = info_file(settings)
    ctx.on_close.append(lambda: remove_api_info(where_file))

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            sockets = [s for srv in server.servers for s in srv.sockets]
            port = sockets[0].getsockname()[1] if sockets else settings.http_port
            where = api_url(settings, port, tls=tls)
            write_api_info(where_file, where)
            announce(ctx.client.redis, {"type": "api", "state": "ready", "url": where})
            print(f"promptspool: HTTP API at {where} (token: `promptspool token`)", flush=True)
        await task

    try:
        asyncio.run(serve())
    except SystemExit:  # uvicorn's answer to a socket it cannot bind
        if server.started:
            raise
    finally:
        remove_api_info(where_file)
    if not server.started:
        raise ApiStartError(
            f"the HTTP API cannot listen on {settings.http_host}:{settings.http_port} "
            "(is the port taken? set PROMPTSPOOL_HTTP_PORT, or 0 for no API)"
        )
    return 0
