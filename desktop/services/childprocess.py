"""One supervised child process (a worker, the HTTP API) as a QProcess, restarted when it dies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QIODevice, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from worker.hosting.children import STOP_TIMEOUT_S, ChildOutcome, RestartBackoff, worker_command

log = logging.getLogger(__name__)

TAIL_BYTES = 4096


SAYS = "promptspool: "  # how the command line starts the line that says why it stopped


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def last_words(path: Path, since: int) -> str:
    """What a child said last about itself in its log (a line the command line starts with
    "promptspool: "), written after offset `since`; '' when nothing."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(since, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.startswith(SAYS)]
    return lines[-1].removeprefix(SAYS) if lines else ""


class ChildProcess(QObject):
    """Starts `promptspool ROLE --exit-with-parent` with the environment `env()` gives, appends
    its output to `log_file`, starts it again with a backoff when it dies, and stops it with
    SIGTERM (then SIGKILL). Every end is recorded as a ChildOutcome."""

    started = Signal(int)  # pid
    exited = Signal(object)  # ChildOutcome
    message = Signal(str)  # for the status bar

    def __init__(
        self,
        what: str,
        role: str,
        log_file: Callable[[], Path],
        env: Callable[[], Mapping[str, str] | None],
        parent: QObject | None = None,
        args: Sequence[str] = (),
    ) -> None:
        """`what`: how messages name it; `env()`: its environment, None while it cannot start;
        `args`: after the role (`worker --remote`)."""
        super().__init__(parent)
        self.what = what
        self.role = role
        self.args = tuple(args)
        self._log_file = log_file
        self._env = env
        self.process: QProcess | None = None
        self.outcomes: list[ChildOutcome] = []
        self.last_words = ""  # what the last process to end said about it
        self.wanted = False  # keep it running: restart it when it dies
        self._started_at = 0.0
        self._log_offset = 0
        self._backoff = RestartBackoff()
        self._restart = QTimer(self)
        self._restart.setSingleShot(True)
        self._restart.timeout.connect(self.start)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    @property
    def pid(self) -> int | None:
        if self.process is None or not self.running:
            return None
        return int(self.process.processId()) or None

    @property
    def log_path(self) -> Path:
        return self._log_file()

    def command(self) -> list[str]:
        return worker_command(*self.args, role=self.role)

    def start(self) -> None:
        """Start it (and keep it running) unless it runs or cannot start yet."""
        self.wanted = True
        if self.running:
            return
        env = self._env()
        if env is None:
            return
        self._restart.stop()
        if self.process is not None:
            self.process.deleteLater()  # the one that ended
        program, *args = self.command()
        process = QProcess(self)
        environment = QProcessEnvironment()
        for name, value in env.items():
            environment.insert(name, value)
        process.setProcessEnvironment(environment)
        log_file = str(self.log_path)
        self._log_offset = log_size(self.log_path)
        process.setStandardOutputFile(log_file, QIODevice.OpenModeFlag.Append)
        process.setStandardErrorFile(log_file, QIODevice.OpenModeFlag.Append)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        process.started.connect(self._on_started)
        self.process = process
        self._started_at = time.monotonic()
        process.start(program, args)

    def ensure(self) -> None:
        """Start it unless it runs or is about to restart."""
        if not (self.running or self._restart.isActive()):
            self.start()

    def restart(self) -> bool:
        """Stop it gracefully; it starts again at once. False if it was not running."""
        if self.process is None or not self.running:
            return False
        self.wanted = True
        self._backoff.reset(0.0)
        self.process.terminate()
        return True

    def kill(self) -> None:
        """SIGKILL (a stopped process cannot take SIGTERM); it restarts as one that died."""
        if self.process is not None and self.running:
            self.process.kill()

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop it for good: SIGTERM, then SIGKILL after `timeout`. Idempotent."""
        self.wanted = False
        self._restart.stop()
        process = self.process
        if process is None or process.state() == QProcess.ProcessState.NotRunning:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finished(*_: Any) -> None:
            if not done.done():
                done.set_result(None)

        process.finished.connect(finished)
        process.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            log.warning("%s pid %s ignored SIGTERM; killing it", self.what, process.processId())
            process.kill()
            await asyncio.wait_for(done, 10)

    # --- signals of the process ---------------------------------------------------------

    def _on_started(self) -> None:
        if self.process is not None and self.sender() is self.process:
            pid = int(self.process.processId())
            log.info("started %s pid %d", self.what, pid)
            self.started.emit(pid)
            self.message.emit(f"started the {self.what} (pid {pid})")

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.sender() is self.process:
            program = " ".join(self.command())
            self.message.emit(f"the {self.what} could not start ({program}); see {self.log_path}")
            self._schedule_restart(None)

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        if self.sender() is not self.process:
            return
        outcome = ChildOutcome(
            int(exit_code),
            status == QProcess.ExitStatus.CrashExit,
            time.monotonic() - self._started_at,
            self.what,
        )
        self.outcomes.append(outcome)
        failed = outcome.exit_code != 0 and not outcome.crashed
        self.last_words = last_words(self.log_path, self._log_offset) if failed else ""
        # A clean exit, or one we asked for (a quit, a restart), is no cause for alarm.
        expected = (outcome.exit_code == 0 and not outcome.crashed) or not self.wanted
        level = logging.INFO if expected else logging.WARNING
        log.log(level, "%s%s", outcome, f": {self.last_words}" if self.last_words else "")
        self.exited.emit(outcome)
        self._schedule_restart(outcome)

    def _schedule_restart(self, outcome: ChildOutcome | None) -> None:
        if not self.wanted:
            return
        delay = self._backoff.delay(outcome.lived_s if outcome is not None else None)
        what = str(outcome) if outcome is not None else f"the {self.what} did not start"
        if outcome is not None and self.last_words:
            what += f" ({self.last_words})"
        self.message.emit(f"{what}; restarting it in {delay:.1f} s")
        self._restart.start(int(delay * 1000))
