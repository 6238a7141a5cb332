"""`promptspool serve`: the bundled server, one supervised worker and the HTTP API, headless."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

import redis

from worker.api.guard import check_bind
from worker.hosting.children import (
    HUNG_REASON,
    ChildOutcome,
    HungWorkerWatch,
    RestartBackoff,
    WorkerChild,
    wait_worker_ready,
    worker_env,
)
from worker.hosting.server import BundledServer, ServerError
from worker.hosting.tlsdoor import RemoteDoor, TlsForwarder, self_signed_certificate
from worker.paths import AppPaths
from worker.queue import keys
from worker.queue.batches.keeper import BatchKeeper
from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress
from worker.queue.replies import last_stream_id
from worker.settings import Settings

log = logging.getLogger(__name__)


class Serve:
    """Runs until SIGINT/SIGTERM: starts (or attaches to) the server, keeps a worker alive.

    A server that `serve` started is supervised too: if it dies, it is started again on the
    same socket and password from its append-only file, and the worker reconnects. Both
    children get SIGTERM on Linux if `serve` itself is killed, so a killed `serve` leaves
    no orphan worker behind; the next `serve` finds every job in the append-only file.
    """

    def __init__(
        self,
        settings: Settings,
        url: str | None = None,
        *,
        remote: str | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.settings = settings
        self.url = url or settings.redis_url
        self.remote = remote  # HOST:PORT where remote workers may join over TLS
        self.tls_files = (tls_cert, tls_key)
        self.server: BundledServer | None = None
        self.forwarder: TlsForwarder | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._exits: list[ChildOutcome] = []
        self._remote_exits: list[ChildOutcome] = []
        self._api_exits: list[ChildOutcome] = []
        self._server_exits: list[int] = []
        self._lock: IO[str] | None = None  # the home's serve lock, held while serving

    def _on_worker_exit(self, outcome: ChildOutcome) -> None:
        self._exits.append(outcome)
        self._wake.set()

    def _on_remote_exit(self, outcome: ChildOutcome) -> None:
        self._remote_exits.append(outcome)
        self._wake.set()

    def _on_api_exit(self, outcome: ChildOutcome) -> None:
        self._api_exits.append(outcome)
        self._wake.set()

    def _on_server_exit(self, code: int) -> None:
        self._server_exits.append(code)
        self._wake.set()

    def _watch_server(self) -> None:
        """Wake the main loop when the server process that we started exits."""
        process = self.server.process if self.server is not None else None
        if process is None:
            return  # attached to a server that another process owns and supervises
        threading.Thread(
            target=lambda: self._on_server_exit(process.wait()), name="server-watch", daemon=True
        ).start()

    def _restart_server(self) -> bool:
        """Start the server again until it answers; False if a stop signal came first."""
        assert self.server is not None
        code = self._server_exits.pop()
        self._server_exits.clear()
        print(f"promptspool: queue server exited ({_describe_exit(code)}); restarting it",
              file=sys.stderr, flush=True)  # fmt: skip
        backoff = RestartBackoff(first_s=0.2)
        while not self._stopping:
            try:
                info = self.server.start()
            except ServerError as exc:
                delay = backoff.delay()
                print(f"promptspool: queue server did not start again: {exc}; "
                      f"retrying in {delay:g} s", file=sys.stderr, flush=True)  # fmt: skip
                if self._sleep(delay):
                    return False
                continue
            self._watch_server()  # before saying so: it may die again at once
            print(f"promptspool: queue server restarted (pid {info.pid}); jobs are kept",
                  file=sys.stderr, flush=True)  # fmt: skip
            return True
        return False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._wake.set()

    def run(self, ready: Callable[[str], None] | None = None) -> int:
        """Serve until SIGINT/SIGTERM; ServeRunning if another `serve` runs this home's queue,
        BindRefused if the HTTP API's settings would expose it without TLS."""
        with_api = self.settings.http_port != 0
        if with_api:
            check_bind(self.settings)
        paths = self.settings.paths.ensure()
        self._lock = _hold_serve_lock(paths.runtime / "serve.lock")
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        address = self._start_server(paths)
        jobs = JobClient(address, self.settings)
        worker = WorkerChild(worker_env(address.celery_url), on_exit=self._on_worker_exit)
        # Jobs on remote endpoints have a worker of their own (an I/O pool), when any is set.
        remote = WorkerChild(
            worker_env(address.celery_url), args=["--remote"], on_exit=self._on_remote_exit
        )
        api = WorkerChild(worker_env(address.celery_url), on_exit=self._on_api_exit, role="api")
        keeper: BatchKeeper | None = None
        try:
            after = last_stream_id(jobs.redis, keys.GLOBAL_EVENTS)
            if with_api:
                api.start()
            else:  # the API's keeper moves batches on; without it, serve runs one itself
                keeper = BatchKeeper(address, self.settings)
                keeper.start()
            worker.start()
            if self.settings.endpoints:
                remote.start()
            self._wait_worker_ready(worker, jobs.redis, after, ready)
            self._supervise(worker, remote, api, jobs)
        finally:
            api.stop(timeout=10)
            remote.stop()
            if keeper is not None:
                keeper.stop()
            worker.stop()
            jobs.close()
            if self.forwarder is not None:
                self.forwarder.stop()
            if self.server is not None:
                self.server.stop()
        return 0

    def _supervise(
        self, worker: WorkerChild, remote: WorkerChild, api: WorkerChild, jobs: JobClient
    ) -> None:
        """Until a stop signal: restart what dies (server, API, workers), replace a hung
        worker, run the server again if the app that started it stopped it."""
        backoff, api_backoff, remote_backoff = RestartBackoff(), RestartBackoff(), RestartBackoff()
        watch = HungWorkerWatch(self.settings.heartbeat_ttl)
        remote_watch = HungWorkerWatch(self.settings.heartbeat_ttl)
        while True:
            self._wake.wait(watch.interval_s)
            self._wake.clear()
            if self._stopping:
                return
            if self._server_exits and not self._restart_server():
                return
            if self._api_exits and not self._restart(api, self._api_exits, api_backoff):
                return
            if self._remote_exits:
                if not self._restart(remote, self._remote_exits, remote_backoff, "remote "):
                    return
            elif remote.running:
                self._replace_if_hung(remote, remote_watch, jobs)
            if self._exits:
                if not self._restart(worker, self._exits, backoff):
                    return
            elif worker.running:
                self._take_over_server(jobs)
                self._replace_if_hung(worker, watch, jobs)

    def _start_server(self, paths: AppPaths) -> QueueAddress:
        """The queue's address: the external server's, or the bundled one's, started now (with
        its TLS door for remote workers when asked)."""
        if self.url:
            return QueueAddress.from_url(self.url)
        self.server = BundledServer(paths, die_with_parent=True)
        info = self.server.start()
        self._watch_server()
        if self.remote:
            try:
                self._open_remote_door(info.socket_path)
            except BaseException:
                self.server.stop()
                raise
        return QueueAddress.from_url(info.celery_url())

    def _restart(
        self,
        child: WorkerChild,
        exits: list[ChildOutcome],
        backoff: RestartBackoff,
        what: str = "",
    ) -> bool:
        """Start a child that exited (its last outcome in `exits`) again after its backoff;
        False if a stop signal came first."""
        outcome = exits.pop()
        exits.clear()
        print(f"promptspool: {what}{outcome}; restarting it", file=sys.stderr, flush=True)
        if self._sleep(backoff.delay(outcome.lived_s)):
            return False
        child.start()
        return True

    def _take_over_server(self, jobs: JobClient) -> None:
        """Run the server ourselves when the process that started it (the app) has stopped it:
        one home has one queue, and its `serve` keeps it up."""
        if self.server is None or self.server.owned:
            return  # an external server, or ours (watched by its own thread)
        try:
            jobs.redis.ping()
            return
        except redis.RedisError:
            pass
        try:
            info = self.server.start()
        except ServerError as exc:
            log.warning("the queue server is gone and did not start again: %s", exc)
            return
        if self.server.process is not None:  # started by us just now, not attached again
            self._watch_server()
            print(f"promptspool: the queue server that another process started has stopped; "
                  f"this serve runs it now (pid {info.pid})",
                  file=sys.stderr, flush=True)  # fmt: skip

    def _replace_if_hung(
        self, worker: WorkerChild, watch: HungWorkerWatch, jobs: JobClient
    ) -> None:
        """Kill a worker that stopped answering and queue its jobs again; it is then restarted
        as any worker that died. (A stalled server is not the worker's fault: judge nothing.)"""
        process = worker.process
        if process is None:
            return
        try:
            worker_id = watch.check(process.pid, jobs.workers, lambda w: jobs.heartbeats([w])[w])
        except redis.RedisError:
            return
        if worker_id is None:
            return
        print(f"promptspool: {watch.verdict(process.pid)}", file=sys.stderr, flush=True)
        worker.kill()
        try:
            jobs.take_back_jobs(worker_id, HUNG_REASON)
        except redis.RedisError as exc:  # a reaper takes them back once the server answers
            log.warning("could not queue the hung worker's jobs again: %s", exc)

    def _open_remote_door(self, socket_path: Path) -> None:
        """TLS on HOST:PORT for remote workers; prints how to join (never the password)."""
        assert self.server is not None and self.remote is not None
        host, port = parse_host_port(self.remote)
        public = host if host not in ("", "0.0.0.0", "::") else socket.getfqdn()
        cert, key = self.tls_files
        if cert is None or key is None:
            names = [public, socket.gethostname(), "localhost", "127.0.0.1", "::1"]
            if host not in ("", "0.0.0.0", "::"):
                names.insert(0, host)
            cert, key = self_signed_certificate(self.settings.paths.config / "tls", names)
        self.forwarder = TlsForwarder(host, port, socket_path, cert, key)
        _, bound = self.forwarder.start()
        door = RemoteDoor(public, bound, cert)
        print(
            f"promptspool: remote workers may join over TLS at {public}:{bound}. On the other "
            f"machine, with a copy of {cert} and the password in {self.server.password_file}:\n"
            f"  PROMPTSPOOL_REDIS_URL='{door.worker_url('PASSWORD')}' promptspool worker",
            flush=True,
        )

    def _sleep(self, seconds: float) -> bool:
        """Wait out a restart backoff; True if a stop signal came meanwhile."""
        if seconds > 0:
            self._wake.wait(seconds)
        return self._stopping

    def _wait_worker_ready(
        self,
        worker: WorkerChild,
        client: redis.Redis,
        after: str,
        ready: Callable[[str], None] | None,
    ) -> None:
        worker_id = wait_worker_ready(
            client, after, 120, alive=lambda: not self._stopping and not self._exits
        )
        if worker_id is not None and ready is not None:
            ready(worker_id)


class ServeRunning(RuntimeError):
    """Another `promptspool serve` already runs this home's queue."""


def _hold_serve_lock(path: Path) -> IO[str]:
    """This process's claim to be the home's one `serve`, held until it exits (even killed)."""
    handle = open(path, "a+", encoding="ascii")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise ServeRunning(
            f"`promptspool serve` (pid {owner}) already runs the queue of {path.parent.parent}; "
            "use that one, or stop it first"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"status {code}"


def parse_host_port(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[IPv6]:PORT' or ':PORT' (all interfaces); ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 0.0.0.0:6390")
    return host.strip("[]") or "0.0.0.0", int(port)
