"""Owns the processes the app starts: the bundled server, a worker and the HTTP API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal

from desktop.services.childprocess import ChildProcess
from desktop.services.clientpool import ClientPool
from desktop.services.httpapi import ApiState, ApiStatus, api_changed, planned_status
from worker.hosting.children import (
    HUNG_REASON,
    ChildOutcome,
    HungWorkerWatch,
    RestartBackoff,
    worker_env,
)
from worker.hosting.server import BundledServer, ServerError
from worker.queue.celery_app import REMOTE_QUEUE
from worker.queue.connection import QueueAddress
from worker.queue.events import Event
from worker.settings import Settings

log = logging.getLogger(__name__)


class Supervisor(QObject):
    """Attach to a running queue or start one; keep one worker and the HTTP API alive; stop
    only what it started."""

    message = Signal(str)  # for the status bar: what happened to the processes
    worker_started = Signal(int)  # pid
    worker_exited = Signal(object)  # ChildOutcome
    api_changed = Signal(object)  # ApiStatus
    stopped = Signal()

    def __init__(
        self,
        settings: Settings,
        pool: ClientPool,
        parent: QObject | None = None,
        *,
        watch_interval_s: float | None = None,
    ) -> None:
        """`watch_interval_s`: how often `check_hung` will be called."""
        super().__init__(parent)
        self.settings = settings
        self.pool = pool
        self._hung = HungWorkerWatch(settings.heartbeat_ttl, watch_interval_s)
        self.address: QueueAddress | None = None
        self.server: BundledServer | None = None
        self.worker = ChildProcess(
            "worker", "worker", lambda: self._log("worker.log"), self._child_env, self
        )
        self.worker.started.connect(self.worker_started)
        self.worker.exited.connect(self.worker_exited)
        self.worker.message.connect(self.message)
        # Jobs on remote endpoints: a worker of their own (an I/O pool), when any is set.
        self.remote = ChildProcess(
            "remote worker", "worker", lambda: self._log("remote-worker.log"), self._child_env,
            self, args=("--remote",),
        )  # fmt: skip
        self.remote.message.connect(self.message)
        self._remote_hung = HungWorkerWatch(settings.heartbeat_ttl, watch_interval_s)
        self.api = ChildProcess(
            "HTTP API", "api", lambda: self._log("api.log"), self._api_env, self
        )
        self.api.started.connect(self._on_api_started)
        self.api.exited.connect(self._on_api_exited)
        self.api.message.connect(self.message)
        self.api_status = ApiStatus(ApiState.off)
        self._recovering = False
        self._stopping = False
        self._stopped = asyncio.Event()

    # --- start ------------------------------------------------------------------------

    @property
    def owns_server(self) -> bool:
        return self.server is not None and self.server.owned

    def stopping(self) -> bool:
        return self._stopping

    @property
    def process(self) -> QProcess | None:
        """Our worker's process (the last one started)."""
        return self.worker.process

    @property
    def outcomes(self) -> list[ChildOutcome]:
        return self.worker.outcomes

    @property
    def worker_running(self) -> bool:
        return self.worker.running

    @property
    def worker_pid(self) -> int | None:
        return self.worker.pid

    def _log(self, name: str) -> Path:
        return self.settings.paths.ensure().logs / name

    def _child_env(self) -> dict[str, str] | None:
        """A child's environment: the queue's URL (never on argv) and this app's home."""
        if self._stopping or self.address is None:
            return None
        env = worker_env(self.address.celery_url)
        if self.settings.home is not None:
            env["PROMPTSPOOL_HOME"] = str(self.settings.home)
        return env

    def _api_env(self) -> dict[str, str] | None:
        env = self._child_env()
        if env is not None:  # the port as set in the window, over a stale environment
            env["PROMPTSPOOL_HTTP_PORT"] = str(self.settings.http_port)
        return env

    async def start(self) -> QueueAddress:
        """The queue's address: an external URL, or the bundled server (attached or started).
        Starts a worker if none is alive (the HTTP API: `start_api`)."""
        if self.settings.redis_url:
            self.address = QueueAddress.from_url(self.settings.redis_url)
        else:
            await self.ensure_server()
        assert self.address is not None
        self.pool.set_address(self.address)
        workers = await self.pool.call(lambda client: client.workers())
        if not workers:
            self.start_worker()
        else:
            self.message.emit(f"attached to a running queue with {len(workers)} worker(s)")
        self.ensure_remote_worker(workers)
        return self.address

    async def ensure_server(self) -> None:
        """Start the bundled server unless one answers (after a crash: start it again)."""
        if self.settings.redis_url or self._stopping:
            return
        if self.server is None:
            self.server = BundledServer(self.settings.paths.ensure())
        info = await self.pool.run(self.server.start)
        self.address = QueueAddress.from_url(info.celery_url())
        if self.server.owned:
            self.message.emit(f"started the queue server (pid {info.pid})")

    async def recover_server(self, reachable: Callable[[], bool]) -> None:
        """Start the bundled server again until the queue is `reachable()` (with a backoff)."""
        if self._recovering:
            return
        self._recovering = True
        backoff = RestartBackoff()
        try:
            while not reachable() and not self._stopping:
                try:
                    await self.ensure_server()
                    return
                except (ServerError, OSError) as exc:
                    self.message.emit(f"the queue server did not start: {exc}")
                await asyncio.sleep(backoff.delay())
        finally:
            self._recovering = False

    def ensure_worker(self) -> None:
        """Start a worker unless ours runs or is about to restart."""
        if not self._stopping:
            self.worker.ensure()

    def start_worker(self) -> None:
        if not self._stopping:
            self.worker.start()

    def ensure_remote_worker(self, workers: list[dict[str, Any]]) -> None:
        """Start a remote worker when endpoints are set and no live worker of the queue takes
        remote jobs (`workers`: the live workers' info, as just read)."""
        if self._stopping or not self.settings.endpoints:
            return
        if any(info.get("queue") == REMOTE_QUEUE for info in workers):
            return
        self.remote.ensure()

    async def check_hung(self, workers: list[dict[str, Any]]) -> None:
        """Replace our worker if it stopped answering (hung, or stopped: SIGSTOP, a debugger):
        kill it and queue its jobs again; it then restarts as a worker that died does.
        `workers`: the live workers' info, as just read (ours is found in it by its pid)."""
        await self._check_hung(self.worker, self._hung, workers)
        await self._check_hung(self.remote, self._remote_hung, workers)

    async def _check_hung(
        self, child: ChildProcess, watch: HungWorkerWatch, workers: list[dict[str, Any]]
    ) -> None:
        pid, process = child.pid, child.process
        if self._stopping or pid is None or process is None:
            return
        worker_id = await self.pool.call(
            lambda client: watch.check(pid, lambda: workers, lambda w: client.heartbeats([w])[w])
        )
        if worker_id is None or process is not child.process:
            return
        self.message.emit(watch.verdict(pid))
        child.kill()  # a stopped process cannot take SIGTERM
        await self.pool.call(lambda client: client.take_back_jobs(worker_id, HUNG_REASON))

    def restart_worker(self) -> None:
        """Stop our worker gracefully (its running job goes back to the queue); it restarts."""
        self.worker.restart()

    # --- the HTTP API -----------------------------------------------------------------

    async def start_api(self) -> ApiStatus:
        """Start the HTTP API unless the settings turn it off or would expose it without TLS
        (said in the status bar), or another process of this home serves it already."""
        if self._stopping or self.address is None:
            return self.api_status
        status = await self.pool.run(planned_status, self.settings, self.api.pid)
        if self.stopping():  # a quit came meanwhile
            return self.api_status
        if status != self.api_status and status.state is ApiState.refused:
            self.message.emit(f"the HTTP API was not started: {status.detail}")
        elif status != self.api_status and status.state is ApiState.ready:
            self.message.emit(f"the HTTP API of this queue answers at {status.url}")
        if status.state is ApiState.starting:
            if self.api.running:
                return self.api_status
            self.api.start()
        elif self.api.wanted:  # off or refused now: ours stops
            await self.api.stop()
        self._set_api(status)
        return status

    async def apply_settings(self, settings: Settings) -> None:
        """Take new settings; the HTTP API starts again (or stops) when its own changed."""
        old, self.settings = self.settings, settings
        if settings.endpoints and not old.endpoints and self.address is not None:
            workers = await self.pool.call(lambda client: client.workers())
            self.ensure_remote_worker(workers)
        if self._stopping or self.address is None or not api_changed(old, settings):
            return
        if not self.api_status.owned and settings.http_port != 0:
            self.message.emit(
                f"the HTTP API runs in another process ({self.api_status.detail}); "
                "it takes the new settings when it starts again"
            )
            return
        if self.api.running:
            await self.api.stop(timeout=10)
        await self.start_api()

    async def check_api(self) -> None:
        """Call now and then: an API run by another process (a `serve`) that has gone is
        replaced by ours; ours that listens but whose announcement was missed (it came before
        the app read the stream) is shown as ready."""
        status = self.api_status
        if status.state is ApiState.ready and not status.owned:
            await self.start_api()
        elif status.state is ApiState.starting and self.api.running:
            from worker.api.info import read_api_info

            info = await self.pool.run(read_api_info, self.settings)
            if info is not None and info.get("pid") == self.api.pid and self.api.running:
                self._set_api(ApiStatus(ApiState.ready, str(info["url"])))

    def note_event(self, event: Event) -> None:
        """An 'api' event from the queue's global stream: an API announced where it listens."""
        if event.type != "api" or event.data.get("state") != "ready" or self._stopping:
            return
        if self.api.running or not self.api_status.owned:
            url = str(event.data.get("url") or self.api_status.url)
            self._set_api(ApiStatus(ApiState.ready, url, self.api_status.detail,
                                    self.api_status.owned))  # fmt: skip

    def _on_api_started(self, _pid: int) -> None:
        if self.api_status.state is not ApiState.starting:
            self._set_api(ApiStatus(ApiState.starting, self.api_status.url))

    def _on_api_exited(self, outcome: ChildOutcome) -> None:
        if self.api.wanted and not self._stopping:
            self._set_api(ApiStatus(ApiState.down, self.api_status.url, self.api.last_words))

    def _set_api(self, status: ApiStatus) -> None:
        if status != self.api_status:
            self.api_status = status
            self.api_changed.emit(status)

    # --- stop -------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop what we started: the API and the worker (SIGTERM, then kill), then our server.
        Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            await asyncio.gather(self.api.stop(timeout=10), self.worker.stop(), self.remote.stop())
            if self.server is not None and self.server.owned:
                await self.pool.run(self.server.stop)
        finally:
            self._stopped.set()
            self.stopped.emit()
