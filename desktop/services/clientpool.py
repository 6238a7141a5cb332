"""JobClient calls on worker threads, awaited from the Qt loop: the GUI thread never blocks."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis

from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress, QueueUnavailable
from worker.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class PoolClosed(RuntimeError):
    """The app is shutting down; no more queue calls."""


class ClientPool:
    """A few threads, each with its own JobClient (redis clients are not shared across threads)."""

    def __init__(self, settings: Settings, max_workers: int = 2) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="promptspool-client")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[JobClient] = []
        self._address: QueueAddress | None = None
        self._generation = 0
        self._closed = False

    @property
    def address(self) -> QueueAddress | None:
        return self._address

    def set_address(self, address: QueueAddress) -> None:
        """Use this queue from now on; each thread reconnects on its next call."""
        with self._lock:
            self._address = address
            self._generation += 1

    async def call(self, fn: Callable[[JobClient], T]) -> T:
        """Run fn(client) on a pool thread and return its result (or raise its error)."""
        return await self.run(self._with_client, fn)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run any blocking function on a pool thread."""
        if self._closed:
            raise PoolClosed("the app is shutting down")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _with_client(self, fn: Callable[[JobClient], T]) -> T:
        client = self._client()
        try:
            return fn(client)
        except (redis.ConnectionError, redis.TimeoutError, QueueUnavailable):
            self._drop(client)
            raise

    def _client(self) -> JobClient:
        with self._lock:
            address, generation = self._address, self._generation
        if address is None:
            raise QueueUnavailable("not connected to a queue yet")
        client: JobClient | None = getattr(self._local, "client", None)
        if client is not None and self._local.generation != generation:
            self._drop(client)
            client = None
        if client is None:
            client = JobClient(address, self.settings)
            self._local.client, self._local.generation = client, generation
            with self._lock:
                self._clients.append(client)
        return client

    def _drop(self, client: JobClient) -> None:
        if getattr(self._local, "client", None) is client:
            self._local.client = None
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        try:
            client.close()
        except (redis.RedisError, OSError) as exc:
            log.debug("closing a client: %s", exc)

    def close(self) -> None:
        """Wait for running calls, drop queued ones, close every client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except (redis.RedisError, OSError) as exc:
                log.debug("closing a client: %s", exc)
