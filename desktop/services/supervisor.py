"""Owns the processes the app starts: the bundled server and a worker, restarted when it dies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QIODevice, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from desktop.services.clientpool import ClientPool
from worker.hosting.children import (
    HUNG_REASON,
    STOP_TIMEOUT_S,
    ChildOutcome,
    HungWorkerWatch,
    RestartBackoff,
    worker_command,
)
from worker.hosting.server import BundledServer, ServerError
from worker.queue.connection import QueueAddress
from worker.settings import Settings

log = logging.getLogger(__name__)


class Supervisor(QObject):
    """Attach to a running queue or start one; keep one worker alive; stop only what it started."""

    message = Signal(str)  # for the status bar: what happened to the processes
    worker_started = Signal(int)  # pid
    worker_exited = Signal(object)  # ChildOutcome
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
        self.process: QProcess | None = None
        self.outcomes: list[ChildOutcome] = []
        self._started_at = 0.0
        self._backoff = RestartBackoff()
        self._recovering = False
        self._restart = QTimer(self)
        self._restart.setSingleShot(True)
        self._restart.timeout.connect(self.start_worker)
        self._stopping = False
        self._stopped = asyncio.Event()

    # --- start ------------------------------------------------------------------------

    @property
    def owns_server(self) -> bool:
        return self.server is not None and self.server.owned

    @property
    def worker_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    @property
    def worker_pid(self) -> int | None:
        if self.process is None:
            return None
        return int(self.process.processId()) or None

    async def start(self) -> QueueAddress:
        """The queue's address: an external URL, or the bundled server (attached or started)."""
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
        if not (self._stopping or self.worker_running or self._restart.isActive()):
            self.start_worker()

    def start_worker(self) -> None:
        if self._stopping or self.worker_running or self.address is None:
            return
        program, *args = worker_command()
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PROMPTSPOOL_REDIS_URL", self.address.celery_url)  # never on argv
        process.setProcessEnvironment(env)
        paths = self.settings.paths.ensure()
        log_file = str(paths.logs / "worker.log")
        process.setStandardOutputFile(log_file, QIODevice.OpenModeFlag.Append)
        process.setStandardErrorFile(log_file, QIODevice.OpenModeFlag.Append)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self.process = process
        self._started_at = time.monotonic()
        process.started.connect(self._on_started)
        process.start(program, args)

    def _on_started(self) -> None:
        if self.process is not None and self.sender() is self.process:
            pid = int(self.process.processId())
            log.info("started worker pid %d", pid)
            self.worker_started.emit(pid)
            self.message.emit(f"started a worker (pid {pid})")

    async def check_hung(self, workers: list[dict[str, Any]]) -> None:
        """Replace our worker if it stopped answering (hung, or stopped: SIGSTOP, a debugger):
        kill it and queue its jobs again; it then restarts as a worker that died does.
        `workers`: the live workers' info, as just read (ours is found in it by its pid)."""
        pid, process = self.worker_pid, self.process
        if self._stopping or pid is None or process is None or not self.worker_running:
            return
        worker_id = await self.pool.call(
            lambda client: self._hung.check(
                pid, lambda: workers, lambda w: client.heartbeats([w])[w]
            )
        )
        if worker_id is None or process is not self.process:
            return
        self.message.emit(self._hung.verdict(pid))
        process.kill()  # a stopped process cannot take SIGTERM
        await self.pool.call(lambda client: client.take_back_jobs(worker_id, HUNG_REASON))

    def restart_worker(self) -> None:
        """Stop our worker gracefully (its running job goes back to the queue); it restarts."""
        if self.process is not None and self.worker_running:
            self._backoff.reset(0.0)
            self.process.terminate()

    # --- deaths -----------------------------------------------------------------------

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            program = " ".join(worker_command())
            self.message.emit(f"the worker could not start ({program}); see the worker log")
            self._schedule_restart()

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        process = self.sender()
        if process is not self.process:
            return
        outcome = ChildOutcome(
            int(exit_code),
            status == QProcess.ExitStatus.CrashExit,
            time.monotonic() - self._started_at,
        )
        self.outcomes.append(outcome)
        self.worker_exited.emit(outcome)
        log.warning("%s", outcome)
        if self._stopping:
            return
        self._schedule_restart(outcome)

    def _schedule_restart(self, outcome: ChildOutcome | None = None) -> None:
        if self._stopping:
            return
        delay = self._backoff.delay(outcome.lived_s if outcome is not None else None)
        what = str(outcome) if outcome is not None else "the worker did not start"
        self.message.emit(f"{what}; restarting it in {delay:.1f} s")
        self._restart.start(int(delay * 1000))

    # --- stop -------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop what we started: the worker (SIGTERM, then kill), then our server. Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._restart.stop()
        try:
            await self._stop_worker()
            if self.server is not None and self.server.owned:
                await self.pool.run(self.server.stop)
        finally:
            self._stopped.set()
            self.stopped.emit()

    async def _stop_worker(self) -> None:
        process = self.process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finished(*_: Any) -> None:
            if not done.done():
                done.set_result(None)

        process.finished.connect(finished)
        process.terminate()  # SIGTERM: a warm shutdown that hands the running job back
        try:
            await asyncio.wait_for(asyncio.shield(done), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("worker pid %s ignored SIGTERM; killing it", process.processId())
            process.kill()
            await asyncio.wait_for(done, 10)
