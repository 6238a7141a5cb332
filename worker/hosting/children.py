"""The one lifecycle of a worker child: start, ready, stop, and the wait before a restart.

Every supervisor follows it: how a worker is started, how its readiness is seen, how it is
stopped, and how long to wait before starting it again.

`serve`, the self-test and the test harness use `WorkerChild`; the desktop keeps its QProcess
(for Qt's signals) and takes the command, the environment, the outcome and the backoff from
here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from worker.queue import keys
from worker.queue.events import Event, read_events
from worker.queue.heartbeats import HeartbeatWatch

STOP_TIMEOUT_S = 30.0  # a warm shutdown hands the running job back; then it is killed
HUNG_REASON = "the worker running this job stopped answering (hung or stopped); it was replaced"


def worker_command(*args: str, exit_with_parent: bool = True, role: str = "worker") -> list[str]:
    """How a supervisor starts a worker (or, with `role="api"`, the HTTP API) that ends with
    it: a subcommand of a frozen app, else `python -m worker`."""
    program = (
        [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "worker"]
    )
    watch = ["--exit-with-parent"] if exit_with_parent else []
    return [*program, role, *watch, *args]


def worker_env(
    queue_url: str, base: Mapping[str, str] | None = None, **extra: str
) -> dict[str, str]:
    """A worker's environment: the queue's URL (with its password) goes here, never on argv,
    which every user of the machine can read."""
    env = dict(os.environ if base is None else base)
    env.update(extra)
    env["PROMPTSPOOL_REDIS_URL"] = queue_url
    return env


_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A Popen preexec_fn that asks Linux to send `sig` to the child when its parent dies.

    None elsewhere. libc is loaded here, in the parent, so between fork and exec the child
    makes a single prctl call: it takes no lock that another thread of the parent could
    hold at fork time, which is what makes preexec_fn unsafe in general (PLW1509).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return set_signal


@dataclass(frozen=True)
class ChildOutcome:
    """How a child process ended, and how long it had lived."""

    exit_code: int  # the signal number when it crashed
    crashed: bool
    lived_s: float
    what: str = "worker"

    @classmethod
    def from_returncode(cls, returncode: int, lived_s: float, what: str = "worker") -> ChildOutcome:
        """From Popen's return code, which is minus the signal for a killed process."""
        return cls(abs(returncode), returncode < 0, lived_s, what)

    def __str__(self) -> str:
        if self.crashed:
            return f"{self.what} crashed (signal {self.exit_code}) after {self.lived_s:.0f} s"
        return f"{self.what} exited with code {self.exit_code} after {self.lived_s:.0f} s"


@dataclass
class RestartBackoff:
    """How long to wait before starting a dead child again.

    A child that lived `stable_after_s` or longer starts again at once (and the delays start
    over); one that keeps dying sooner waits `first_s`, then twice as long each time, up to
    `max_s`, so a child that cannot start does not spin.
    """

    first_s: float = 0.5
    max_s: float = 30.0
    stable_after_s: float = 30.0
    _next_s: float = field(default=-1.0, init=False, repr=False)

    def delay(self, lived_s: float | None = None) -> float:
        """The wait before the next start; `lived_s` None: the child did not start at all."""
        if self._next_s < 0:
            self._next_s = self.first_s
        if lived_s is not None and lived_s >= self.stable_after_s:
            self._next_s = self.first_s
            return 0.0
        delay = self._next_s
        self._next_s = min(max(self._next_s * 2, self.first_s), self.max_s)
        return delay

    def reset(self, next_s: float | None = None) -> None:
        """Start over: the next delay is `next_s` (default: `first_s`)."""
        self._next_s = self.first_s if next_s is None else next_s


class HungWorkerWatch:
    """Tells a supervisor that its worker stopped answering: its heartbeat counter stood
    still for twice the heartbeat's lifetime, in contact time (a sleep or a stalled server
    judges nobody; see worker.queue.heartbeats). A worker that has not beaten yet is still
    starting and is not judged. Twice: a reaper on another worker gets the first say.

    The supervisor knows its worker by pid; `check` finds the id it beats under.
    """

    def __init__(self, heartbeat_ttl: float, interval_s: float | None = None) -> None:
        """`interval_s`: how often the supervisor looks (default: as often as a reaper)."""
        self.after_s = 2 * heartbeat_ttl
        self.interval_s = interval_s or max(0.5, min(2.0, heartbeat_ttl / 4))
        self._watch = HeartbeatWatch(self.after_s, max_gap=2 * self.interval_s)
        self._known: tuple[int | None, str | None] = (None, None)  # worker pid, its id

    def check(
        self,
        pid: int,
        workers: Callable[[], Sequence[Mapping[str, Any]]],
        counter: Callable[[str], int | None],
    ) -> str | None:
        """Call once a round: the id of the worker with `pid` once it counts as hung, else None.

        `workers()` gives the live workers' info (read only until this pid's id is found);
        `counter(worker_id)` its heartbeat counter.
        """
        if self._known[0] != pid or self._known[1] is None:
            self._known = (pid, _worker_id_of(pid, workers()))
        worker_id = self._known[1]
        if worker_id is None:
            return None
        beats = counter(worker_id)
        if beats is None or worker_id not in self._watch.observe({worker_id: beats}):
            return None
        return worker_id

    def verdict(self, pid: int) -> str:
        """What the supervisor says when it replaces the worker."""
        return (
            f"the worker (pid {pid}) stopped answering: no heartbeat for {self.after_s:g} s; "
            "replacing it"
        )


def _worker_id_of(pid: int, workers: Sequence[Mapping[str, Any]]) -> str | None:
    """The id of the worker with this pid on this machine, from the live workers' info."""
    host = socket.gethostname()
    for info in workers:
        if info.get("pid") == pid and info.get("host") == host:
            return str(info["id"])
    return None


def wait_announced(
    client: redis.Redis,
    after: str,
    timeout: float,
    role: str = "worker",
    alive: Callable[[], bool] = lambda: True,
) -> Event | None:
    """The first "ready" announcement of a `role` child ("worker", or "api") on the global
    stream after event `after`; None when `alive()` turns false (the child died, a stop was
    asked) or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        for event in read_events(client, {keys.GLOBAL_EVENTS: after}, block_ms=250):
            after = event.id
            if event.type == role and event.data.get("state") == "ready":
                return event
    return None


def wait_worker_ready(
    client: redis.Redis,
    after: str,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> str | None:
    """The id of the first worker to announce itself ready after event `after` (see
    wait_announced)."""
    event = wait_announced(client, after, timeout, "worker", alive)
    return None if event is None else str(event.data.get("worker"))


def free_loopback_port() -> int:
    """A TCP port on loopback that nothing listens on right now (for an API child)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM (a worker's warm shutdown: its running jobs go back to the queue), then SIGKILL
    if it has not exited within `timeout`; its return code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


class WorkerChild:
    """One worker process at a time, started from the same command and environment.

    `on_exit` is called (on a watcher thread) with the outcome of each process that ends.
    With `die_with_parent` the worker ends with the process that started it: it watches its
    parent itself, on any OS (`--exit-with-parent`), and on Linux it also gets SIGTERM when
    the parent dies, even by SIGKILL.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        args: Sequence[str] = (),
        log: Path | None = None,
        die_with_parent: bool = True,
        on_exit: Callable[[ChildOutcome], None] | None = None,
        role: str = "worker",
    ) -> None:
        """`role`: the subcommand the child runs ("worker", or "api" for the HTTP API)."""
        self.role = role
        self.args = tuple(args)
        self.env = dict(env)
        self.log = log
        self.die_with_parent = die_with_parent
        self.on_exit = on_exit
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> subprocess.Popen[bytes]:
        sink: IO[bytes] | None = open(self.log, "ab") if self.log is not None else None  # noqa: SIM115
        command = worker_command(*self.args, exit_with_parent=self.die_with_parent, role=self.role)
        try:
            process = subprocess.Popen(
                command,
                env=self.env,
                stdout=sink,
                stderr=sink,
                preexec_fn=parent_death_signal(signal.SIGTERM) if self.die_with_parent else None,  # noqa: PLW1509 (one prctl call)
            )
        finally:
            if sink is not None:
                sink.close()
        self.process = process
        self.started_at = started = time.monotonic()
        if self.on_exit is not None:
            on_exit = self.on_exit

            def watch() -> None:
                code = process.wait()
                lived = time.monotonic() - started
                what = "HTTP API" if self.role == "api" else self.role
                on_exit(ChildOutcome.from_returncode(code, lived, what))

            threading.Thread(target=watch, name=f"{self.role}-watch", daemon=True).start()
        return process

    def wait_ready(self, client: redis.Redis, after: str, timeout: float = 120.0) -> str | None:
        """The worker's id once it is ready (see `wait_worker_ready`); None if it died first."""
        return wait_worker_ready(client, after, timeout, alive=lambda: self.running)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Stop the current process (warm shutdown, then kill); its return code, None if none."""
        return None if self.process is None else stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: for a worker that stopped answering (a stopped process ignores SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
