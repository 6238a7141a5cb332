"""A real queue for tests: the bundled server, worker processes, and waits on events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from worker import keys
from worker.client import JobClient
from worker.connection import QueueAddress
from worker.events import Event, read_events
from worker.redisio import last_stream_id
from worker.server import BundledServer
from worker.settings import Settings


def last_event_id(client: redis.Redis, stream: str = keys.GLOBAL_EVENTS) -> str:
    return last_stream_id(client, stream)


def wait_for_event(
    client: redis.Redis,
    predicate: Callable[[Event], bool],
    *,
    stream: str = keys.GLOBAL_EVENTS,
    after: str = "0-0",
    timeout: float = 60.0,
) -> Event:
    """Block on the stream until an event matches; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        for event in read_events(
            client, {stream: after}, block_ms=max(1, int(min(left, 1) * 1000))
        ):
            after = event.id
            if predicate(event):
                return event
    raise AssertionError(f"no matching event on {stream} within {timeout} s")


@dataclass
class WorkerHandle:
    process: subprocess.Popen[bytes]
    worker_id: str

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Queue:
    """A bundled server under `home` with worker processes that the test controls."""

    home: Path
    settings: Settings
    server: BundledServer
    address: QueueAddress
    env: dict[str, str]
    workers: list[WorkerHandle] = field(default_factory=list)
    _client: JobClient | None = None

    @property
    def client(self) -> JobClient:
        if self._client is None:
            self._client = JobClient(self.address, self.settings)
        return self._client

    @property
    def redis(self) -> redis.Redis:
        return self.client.redis

    def start_worker(self, timeout: float = 60.0, **env: str) -> WorkerHandle:
        """Start `promptspool worker` and wait for its ready event."""
        after = last_event_id(self.redis)
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--loglevel", "WARNING"],
            env={**self.env, **env},
        )
        try:
            event = wait_for_event(
                self.redis,
                lambda e: e.type == "worker" and e.data.get("state") == "ready",
                after=after,
                timeout=timeout,
            )
        except AssertionError:
            process.kill()
            raise
        handle = WorkerHandle(process, str(event.data["worker"]))
        self.workers.append(handle)
        return handle

    def wait_state(self, job_id: str, *states: str, timeout: float = 60.0) -> Event:
        """Wait (replaying the job's history) for a state event in one of `states`."""
        return wait_for_event(
            self.redis,
            lambda e: e.type == "state" and e.data.get("state") in states,
            stream=keys.events(job_id),
            timeout=timeout,
        )

    def wait_tokens(self, job_id: str, attempt: int = 1, timeout: float = 60.0) -> Event:
        """Wait until the given attempt of the job has streamed some text."""
        return wait_for_event(
            self.redis,
            lambda e: e.type == "tokens" and e.attempt == attempt,
            stream=keys.events(job_id),
            timeout=timeout,
        )

    def streamed_text(self, job_id: str, attempt: int = 1) -> str:
        """All text the attempt streamed, up to its final state event."""
        parts = []
        for event in self.client.events(job_id, block_ms=5000):
            if event.attempt != attempt:
                continue
            if event.type == "tokens":
                parts.append(event.data["text"])
            if event.state is not None and event.state.finished:
                return "".join(parts)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for handle in self.workers:
            if handle.process.poll() is None:
                handle.process.terminate()
                try:
                    handle.process.wait(20)
                except subprocess.TimeoutExpired:
                    handle.process.kill()
                    handle.process.wait(10)
        if self._client is not None:
            self._client.close()
        self.server.stop()


def start_queue(home: Path, **settings_env: str) -> Queue:
    """A fresh bundled server under `home`; workers inherit `settings_env` (PROMPTSPOOL_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env.update(settings_env)
    env["PROMPTSPOOL_HOME"] = str(home)
    settings = Settings(home=home)
    server = BundledServer(settings.paths.ensure())
    info = server.start()
    address = QueueAddress.from_url(info.celery_url())
    env["PROMPTSPOOL_REDIS_URL"] = address.celery_url
    return Queue(home, settings, server, address, env)
