"""The coroutines the app runs on its loop: kept referenced, cancelled together, failures told."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import redis

from desktop.services.clientpool import PoolClosed
from worker.queue.connection import QueueUnavailable

log = logging.getLogger(__name__)


class TaskGroup:
    """Spawns tasks and keeps strong references until they end (asyncio keeps weak ones).

    A task that fails is reported through `report` in one line: an unreachable queue as such,
    anything else as a failure (logged with its traceback); a closed pool (quitting) is not.
    """

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._done, what))
        return task

    async def cancel_all(self) -> None:
        """Cancel every task but the calling one, and wait until they have ended."""
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _done(self, what: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or isinstance(exc, PoolClosed):
            return
        if isinstance(exc, QueueUnavailable | redis.RedisError):
            self.report(f"{what}: the queue is not reachable ({exc})")
            return
        log.error("%s failed", what, exc_info=exc)
        self.report(f"{what} failed: {exc}")
