"""A real queue for tests, benchmarks and scripts: the bundled server, worker processes, waits.

Shipped with the core (as Celery ships `celery.contrib.testing`) so that the test suite, the
benchmarks and the screenshot script share one harness; the app never imports it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:  # the benchmarks use this module without pytest
    import pytest

from worker.api.token import TokenFile
from worker.hosting.children import (
    WorkerChild,
    free_loopback_port,
    stop_process,
    wait_announced,
    worker_command,
)
from worker.hosting.server import BundledServer
from worker.queue import keys
from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress
from worker.queue.events import Event, read_events
from worker.queue.replies import last_stream_id
from worker.settings import Settings

# Commands the tests run start in their own process, each alike, unless a test asks for the
# warm command server (PROMPTSPOOL_CLI_SERVER=1): it would start on the first and serve the
# rest, once it is up.
NO_COMMAND_SERVER = {"PROMPTSPOOL_CLI_SERVER": "0"}


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

    def start_worker(
        self, timeout: float = 60.0, log: Path | None = None, *, remote: bool = False, **env: str
    ) -> WorkerHandle:
        """Start `promptspool worker` (`remote`: `worker --remote`, for jobs on remote
        endpoints) and wait for its ready event (its stderr to `log`)."""
        after = last_event_id(self.redis)
        args = ["--loglevel", "WARNING", *(["--remote"] if remote else [])]
        child = WorkerChild({**self.env, **env}, args=args, log=log, die_with_parent=False)
        process = child.start()
        event = _announced(self.redis, process, after, timeout, "worker")
        handle = WorkerHandle(process, str(event.data["worker"]))
        self.workers.append(handle)
        return handle

    def configure(self, **fields: Any) -> Settings:
        """Write these settings to the home's settings file (workers read it, remote ones
        before each job) and use them for this queue's client from now on."""
        settings = Settings(home=self.home, **fields)
        settings.save()
        self.settings = Settings(home=self.home)
        if self._client is not None:
            self._client.close()
            self._client = None
        return self.settings

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
        """Stop the workers, then the server: the server is stopped whatever went wrong."""
        try:
            for handle in self.workers:
                stop_process(handle.process, timeout=20)
            if self._client is not None:
                self._client.close()
        finally:
            self.server.stop()


def start_queue(home: Path, **settings_env: str) -> Queue:
    """A fresh bundled server under `home`; workers inherit `settings_env` (PROMPTSPOOL_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env.update(NO_COMMAND_SERVER | settings_env)
    env["PROMPTSPOOL_HOME"] = str(home)
    settings = Settings(home=home)
    server = BundledServer(settings.paths.ensure())
    info = server.start()
    address = QueueAddress.from_url(info.celery_url())
    env["PROMPTSPOOL_REDIS_URL"] = address.celery_url
    return Queue(home, settings, server, address, env)


@contextmanager
def temp_queue(
    workers: int = 1, env: dict[str, str] | None = None, prefix: str = "psb-"
) -> Iterator[Queue]:
    """A fresh bundled server in a temporary home with `workers` real workers; all removed."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        queue = start_queue(home, **(env or {}))
        try:
            for _ in range(workers):
                queue.start_worker()
            yield queue
        finally:
            queue.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def paused(*pids: int) -> Iterator[None]:
    """The processes stopped (SIGSTOP) inside the block and continued (SIGCONT) after it, as a
    laptop's sleep, a debugger or a stalled disk stops them; they are continued whatever
    happens in the block."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def let_time_pass(seconds: float) -> None:
    """Hold a fault for this long: for a pause that nothing can be observed during (the
    server itself is stopped). Never a wait for readiness: wait on events for that."""
    threading.Event().wait(seconds)


def worker_info(client: redis.Redis, worker_id: str) -> dict[str, Any] | None:
    """The worker's last heartbeat info (None once its heartbeat key has expired)."""
    raw: Any = client.get(keys.worker(worker_id))
    return json.loads(raw) if raw else None


def broker_is_empty(client: redis.Redis) -> bool:
    """No message waits in Celery's queues or is held unacknowledged by a worker."""
    names = [n for n in client.scan_iter("promptspool*") if client.type(n) == b"list"]
    return not any(client.llen(n) for n in names) and not client.hlen("unacked")


def deny_open(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make opening `path` fail with EACCES, as a mode-000 file does (even for root)."""
    real_open, real_os_open = Path.open, os.open

    def deny(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    def deny_os(name: Any, *args: Any, **kwargs: Any) -> int:
        if Path(name) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return real_os_open(name, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    monkeypatch.setattr(os, "open", deny_os)


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Re-check `predicate` with a short backoff until it holds; for conditions with no event.

    Prefer stream events and process exits; this is for things like a file appearing.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or 'condition'} did not hold within {timeout} s")
        pause.wait(delay)
        delay = min(delay * 2, 0.1)


def wait_pid_gone(pid: int, timeout: float = 30.0) -> None:
    """Block until process `pid` (not necessarily our child) has exited (Linux pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError(f"process {pid} still running after {timeout} s")
    finally:
        os.close(fd)


def read_pid(path: Path) -> int:
    return int(path.read_text(encoding="ascii").strip())


@dataclass
class ServeProcess:
    """`promptspool serve` as a child process; reader threads collect its output lines."""

    home: Path
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closed_pipes: int = 0

    @classmethod
    def start(
        cls,
        home: Path,
        settings_env: dict[str, str] | None = None,
        timeout: float = 60.0,
        args: tuple[str, ...] = (),
    ) -> ServeProcess:
        """Start `serve ARGS` under `home` with PROMPTSPOOL_* settings; wait until it is ready."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
        env.update(NO_COMMAND_SERVER | (settings_env or {}))
        env["PROMPTSPOOL_HOME"] = str(home)
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve", *args],
            process_group=0,  # its own group: a test can stop it with its worker, as a sleep does
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        serve = cls(home, process)
        for pipe in (process.stdout, process.stderr):
            threading.Thread(target=serve._collect, args=(pipe,), daemon=True).start()
        try:
            serve.wait_line("queue ready", timeout=timeout)
        except AssertionError:
            serve.kill()
            raise
        return serve

    def _collect(self, pipe: Any) -> None:
        with pipe:
            for line in pipe:
                with self.changed:
                    self.lines.append(line.rstrip("\n"))
                    self.changed.notify_all()
        with self.changed:
            self.closed_pipes += 1
            self.changed.notify_all()

    def wait_line(self, text: str, timeout: float = 60.0, start: int = 0) -> int:
        """Index of the first output line at or after `start` containing `text`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for index in range(start, len(self.lines)):
                    if text in self.lines[index]:
                        return index
                if self.closed_pipes == 2:
                    raise AssertionError(f"serve exited without printing {text!r}: {self.lines}")
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-15:])
                    raise AssertionError(f"serve did not print {text!r} in {timeout} s:\n{tail}")
                self.changed.wait(left)

    @property
    def server_pid(self) -> int:
        return read_pid(self.home / "run" / "server.pid")

    def client(self) -> JobClient:
        return JobClient.connect(Settings(home=self.home))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._drained()

    def _drained(self, timeout: float = 30.0) -> None:
        """Wait until both output pipes reached EOF (children holding them have exited)."""
        with self.changed:
            self.changed.wait_for(lambda: self.closed_pipes == 2, timeout)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._drained()
        return code


free_port = free_loopback_port  # the name the tests use


def _announced(
    client: redis.Redis, process: subprocess.Popen[bytes], after: str, timeout: float, role: str
) -> Event:
    """The child's ready announcement; AssertionError (the child killed) if it died first or
    did not announce itself within `timeout`."""
    event = wait_announced(client, after, timeout, role, lambda: process.poll() is None)
    if event is None:
        process.kill()
        raise AssertionError(f"the {role} (pid {process.pid}) did not get ready in {timeout} s")
    return event


@dataclass
class ApiProcess:
    """`promptspool api` for a test queue, as a child process, on a free loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    token: str

    @classmethod
    def start(
        cls, queue: Queue, timeout: float = 60.0, stderr: int | None = None, **settings_env: str
    ) -> ApiProcess:
        """Start the API with the queue's environment plus `settings_env` (PROMPTSPOOL_*);
        returns once it listens (its ready event on the global stream). `stderr`: as Popen's
        (subprocess.PIPE to read what it says)."""
        port = int(settings_env.pop("PROMPTSPOOL_HTTP_PORT", 0)) or free_port()
        env = {**queue.env, **settings_env, "PROMPTSPOOL_HTTP_PORT": str(port)}
        after = last_event_id(queue.redis)
        command = worker_command(exit_with_parent=False, role="api")
        process = subprocess.Popen(command, env=env, stderr=stderr)
        event = _announced(queue.redis, process, after, timeout, "api")
        token = TokenFile(queue.settings.paths.config).read()
        return cls(process, str(event.data["url"]), token)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
