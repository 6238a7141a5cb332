"""What every request shares: the settings, the queue (sync and async), the token, the models."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
from fastapi import Request

from worker.api.errors import ApiError
from worker.api.ratelimit import RateLimiter
from worker.api.token import TokenFile
from worker.jobs.job import JobOrigin
from worker.jobs.spec import JobSpec
from worker.modelfile.catalog import CatalogEntry, UnknownModel, list_models
from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress
from worker.settings import Settings


@dataclass
class ApiContext:
    """One per server process. The API keeps no state of its own: everything is in the queue."""

    settings: Settings
    address: QueueAddress
    tokens: TokenFile
    client: JobClient = field(init=False)
    aredis: redis.asyncio.Redis = field(init=False)
    limiter: RateLimiter | None = field(init=False)  # None: no http_rate_limit_rpm
    _submit_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    # Run when the app shuts down (before uvicorn re-raises the signal that stopped it).
    on_close: list[Callable[[], None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.client = JobClient(self.address, self.settings)
        self.aredis = self.address.connect_async()
        rpm = self.settings.http_rate_limit_rpm
        self.limiter = RateLimiter.for_queue(self.address, rpm) if rpm else None

    @classmethod
    def create(cls, settings: Settings, url: str | None = None) -> ApiContext:
        return cls(settings, QueueAddress.resolve(settings, url), TokenFile(settings.paths.config))

    async def aclose(self) -> None:
        for cleanup in self.on_close:
            cleanup()
        await self.aredis.aclose()
        self.client.close()
        if self.limiter is not None:
            self.limiter.close()

    def submit(
        self,
        specs: Sequence[JobSpec],
        origins: Sequence[JobOrigin | None] | None = None,
        also: Callable[[Any, list[str]], None] | None = None,
        guard: Callable[[Any], None] | None = None,
    ) -> list[str]:
        """Record and send jobs (one submitter at a time: the Celery producer is shared)."""
        with self._submit_lock:
            return self.client.submit(specs, origins, also=also, guard=guard)

    def retry(self, job_id: str) -> int:
        with self._submit_lock:
            return self.client.retry(job_id)

    # --- models -----------------------------------------------------------------------

    def models(self) -> list[CatalogEntry]:
        return list_models(self.settings.model, self.settings.model_dirs)

    def model_path(self, name: str | None, param: str = "model") -> str:
        """The model a request names, as a job's `model`: a remote endpoint's `NAME/MODEL`,
        else the file (None or 'default': the default model); 404 when there is none."""
        try:
            return self.settings.resolve_model(name or "")
        except UnknownModel as exc:
            raise ApiError(404, str(exc), param=param, code="model_not_found") from exc


def context(request: Request) -> ApiContext:
    """The FastAPI dependency that hands an endpoint the server's context."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
