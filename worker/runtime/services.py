"""A worker's background threads: its heartbeat, its cancel listener and its reaper's rounds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from worker.queue import keys
from worker.queue.events import announce
from worker.queue.heartbeats import forget_beats, write_beat
from worker.runtime.cancels import CancelRegistry
from worker.runtime.reaper import Reaper

log = logging.getLogger(__name__)

RETRY_LOOK_S = 1.0


class WorkerServices:
    """Threads that keep a worker visible and the queue honest while jobs run."""

    def __init__(
        self, reaper: Reaper, info: Callable[[], dict[str, Any]], *, retry_timer: bool = False
    ) -> None:
        """`reaper`: this worker's (its client, id and heartbeat lifetime are the worker's);
        `info`: what the heartbeat says about the worker besides its id, pid and host;
        `retry_timer`: release jobs waiting for their next try when it is due, to the
        moment (a remote worker's; every reaper's round also releases them, later)."""
        self.redis = reaper.redis
        self.worker_id = reaper.worker_id
        self.ttl = reaper.ttl
        self.info = info
        self.reaper = reaper
        self.cancels = CancelRegistry()
        self._stop = threading.Event()
        self._retry_wake = threading.Event()
        self._retry_timer = retry_timer
        self._threads: list[threading.Thread] = []
        self._pubsub: Any = None

    def start(self) -> None:
        self.beat()
        self._announce("ready")
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(**{keys.CANCEL_CHANNEL: self._on_cancel})
        loops = [
            (self._heartbeat_loop, "heartbeat"),
            (self._reaper_loop, "reaper"),
            (self._cancel_loop, "cancel-listener"),
        ]
        if self._retry_timer:
            loops.append((self._retry_loop, "retry-timer"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"promptspool-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._retry_wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._pubsub is not None:
            self._pubsub.close()
        try:
            self.redis.delete(keys.worker(self.worker_id))
            self.redis.srem(keys.WORKERS, self.worker_id)
            forget_beats(self.redis, [self.worker_id])
            self._announce("stopped")
        except redis.RedisError:
            pass

    def _announce(self, state: str) -> None:
        """A worker event on the global stream: the app and `serve` wait for these."""
        announce(self.redis, {"type": "worker", "state": state, "worker": self.worker_id})

    # --- heartbeat --------------------------------------------------------------------

    def beat(self) -> None:
        write_beat(self.redis, self.worker_id, self.info(), self.ttl)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)

    # --- cancel -----------------------------------------------------------------------

    def _on_cancel(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        job_id = data.decode() if isinstance(data, bytes) else str(data)
        if self.cancels.cancel(job_id):
            log.info("cancel requested for job %s", job_id)

    def _cancel_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._pubsub.get_message(timeout=0.5)
            except (redis.RedisError, ValueError) as exc:
                if self._stop.is_set():
                    return
                log.warning("cancel listener: %s", exc)
                self._stop.wait(0.5)

    # --- reaper -----------------------------------------------------------------------

    def _reaper_loop(self) -> None:
        while True:
            try:
                self.reaper.round()
            except redis.RedisError as exc:
                log.warning("reaper: %s", exc)
            if self._stop.wait(self.reaper.interval):
                return

    # --- retry timer ------------------------------------------------------------------

    def wake_retry_timer(self) -> None:
        """A job started waiting for its next try: the timer looks at the earliest again."""
        self._retry_wake.set()

    def _retry_loop(self) -> None:
        """Release each waiting job when its next try is due (so a Retry-After of 1.5 s is
        1.5 s, not a reaper's round later). Sleeps until the earliest is due, at most
        RETRY_LOOK_S (another worker may have deferred one sooner), or until woken."""
        while not self._stop.is_set():
            try:
                self.reaper.release()
                due = self.reaper.ledger.next_due()
            except redis.RedisError as exc:
                log.warning("retry timer: %s", exc)
                due = None
            wait = RETRY_LOOK_S if due is None else min(RETRY_LOOK_S, due - time.time())
            if wait > 0 and self._retry_wake.wait(wait):
                self._retry_wake.clear()
