"""Which running jobs this worker can stop, and the events that stop them."""

from __future__ import annotations

import threading


class CancelRegistry:
    """Maps running job ids to the events that stop them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def register(self, job_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[job_id] = event
        return event

    def unregister(self, job_id: str) -> None:
        with self._lock:
            self._events.pop(job_id, None)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            event = self._events.get(job_id)
        if event is not None:
            event.set()
        return event is not None

    def cancel_all(self) -> None:
        with self._lock:
            events = list(self._events.values())
        for event in events:
            event.set()
