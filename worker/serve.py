"""`promptspool serve`: the bundled server plus one supervised worker, headless."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import redis

from worker import keys
from worker.connection import QueueAddress
from worker.events import read_events
from worker.redisio import last_stream_id
from worker.server import BundledServer
from worker.settings import Settings

log = logging.getLogger(__name__)


def worker_command() -> list[str]:
    """How to start a worker: a subcommand of a frozen app, else `python -m worker`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "worker"]
    return [sys.executable, "-m", "worker", "worker"]


class WorkerProcess:
    """One worker child: started with the queue's URL in its environment, never on argv."""

    def __init__(self, address: QueueAddress, on_exit: Callable[[int], None]) -> None:
        self.address = address
        self.on_exit = on_exit
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        env = dict(os.environ, PROMPTSPOOL_REDIS_URL=self.address.celery_url)
        self.process = subprocess.Popen(worker_command(), env=env)
        self.started_at = time.monotonic()
        process = self.process
        threading.Thread(
            target=lambda: self.on_exit(process.wait()), name="worker-watch", daemon=True
        ).start()

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (the running job is handed back to the queue), then kill."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


class Serve:
    """Runs until SIGINT/SIGTERM: starts (or attaches to) the server, keeps a worker alive."""

    def __init__(self, settings: Settings, url: str | None = None) -> None:
        self.settings = settings
        self.url = url or settings.redis_url
        self.server: BundledServer | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._exits: list[int] = []

    def _on_worker_exit(self, code: int) -> None:
        self._exits.append(code)
        self._wake.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self._wake.set()

    def run(self, ready: Callable[[str], None] | None = None) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        if self.url:
            address = QueueAddress.from_url(self.url)
        else:
            self.server = BundledServer(self.settings.paths.ensure())
            info = self.server.start()
            address = QueueAddress.from_url(info.celery_url())
        client = address.connect()
        worker = WorkerProcess(address, self._on_worker_exit)
        backoff = 0.5
        try:
            after = last_stream_id(client, keys.GLOBAL_EVENTS)
            worker.start()
            self._wait_worker_ready(client, after, ready)
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                code = self._exits.pop() if self._exits else None
                lived = time.monotonic() - worker.started_at
                backoff = 0.5 if lived > 30 else min(backoff * 2, 30.0)
                print(f"promptspool: worker exited ({code}); restarting", file=sys.stderr)
                if self._sleep(backoff if lived < 5 else 0):
                    break
                worker.start()
        finally:
            worker.stop()
            client.close()
            if self.server is not None:
                self.server.stop()
        return 0

    def _sleep(self, seconds: float) -> bool:
        """Wait out a restart backoff; True if a stop signal came meanwhile."""
        if seconds > 0:
            self._wake.wait(seconds)
        return self._stopping

    def _wait_worker_ready(
        self, client: redis.Redis, after: str, ready: Callable[[str], None] | None
    ) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self._stopping and not self._exits:
            for event in read_events(client, {keys.GLOBAL_EVENTS: after}, block_ms=250):
                after = event.id
                if event.type == "worker" and event.data.get("state") == "ready":
                    if ready is not None:
                        ready(str(event.data.get("worker")))
                    return
