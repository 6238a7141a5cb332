"""`promptspool api`: the HTTP API's process, on uvicorn; says where it listens once it does."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import uvicorn

from worker.api.app import create_app
from worker.api.context import ApiContext
from worker.api.guard import check_bind
from worker.queue.events import announce
from worker.settings import Settings

API_INFO_FILE = "api.json"  # in the runtime folder: where the running API listens


class ApiStartError(RuntimeError):
    """The API cannot listen (the port is taken, a certificate cannot be read, ...)."""


def api_url(settings: Settings, port: int | None = None, *, tls: bool = False) -> str:
    host = settings.http_host
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port or settings.http_port}"


def read_api_info(settings: Settings) -> dict[str, object] | None:
    """Where this home's API listens ({'url', 'pid'}), if one is running."""
    path = settings.paths.runtime / API_INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def _write_info(path: Path, url: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": url, "pid": os.getpid()}, handle)
    os.replace(tmp, path)


def run_api(settings: Settings, url: str | None = None) -> int:
    """Serve the API until SIGINT/SIGTERM. BindRefused / ApiStartError say why it cannot."""
    tls = check_bind(settings)
    paths = settings.paths.ensure()
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
    info_file = paths.runtime / API_INFO_FILE

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            sockets = [s for srv in server.servers for s in srv.sockets]
            port = sockets[0].getsockname()[1] if sockets else settings.http_port
            where = api_url(settings, port, tls=tls)
            _write_info(info_file, where)
            announce(ctx.client.redis, {"type": "api", "state": "ready", "url": where})
            print(f"promptspool: HTTP API at {where} (token: `promptspool token`)", flush=True)
        await task

    try:
        asyncio.run(serve())
    except SystemExit:  # uvicorn's answer to a socket it cannot bind
        if server.started:
            raise
    finally:
        info_file.unlink(missing_ok=True)
    if not server.started:
        raise ApiStartError(
            f"the HTTP API cannot listen on {settings.http_host}:{settings.http_port} "
            "(is the port taken? set PROMPTSPOOL_HTTP_PORT, or 0 for no API)"
        )
    return 0
