"""The selected job, followed live: one reader thread at a time, and only its news passed on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtCore import QObject, Signal

from desktop.services.readers import JobFollower
from worker.jobs.job import Job
from worker.queue.connection import QueueAddress
from worker.queue.events import Event
from worker.settings import Settings


class JobFollowing(QObject):
    """Follows the job the window shows. A newly selected job replaces the old one's thread;
    what an old thread still reads after that is dropped, never shown for the new job."""

    loaded = Signal(object, object)  # Job, dict[int, str]: its text so far, per attempt
    events = Signal(object)  # list[Event] of the followed job
    changed = Signal(object)  # Job, after a state change
    gone = Signal()  # the followed job was removed from the queue

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.address: QueueAddress | None = None
        self._current: JobFollower | None = None
        self._retired: list[JobFollower] = []
        self._closed = False

    @property
    def job_id(self) -> str | None:
        return self._current.job_id if self._current is not None else None

    def follow(self, job_id: str | None) -> bool:
        """Follow `job_id` (None or '': nothing); False when there is nothing to follow."""
        if job_id and self.job_id == job_id:
            return True
        self._retire()
        if not job_id or self.address is None or self._closed:
            return False
        follower = JobFollower(self.address, self.settings, job_id)
        follower.loaded.connect(self._on_loaded)
        follower.events.connect(self._on_events)
        follower.job_changed.connect(self._on_changed)
        follower.gone.connect(self._on_gone)
        follower.finished.connect(self._reap)
        self._current = follower
        follower.start()
        return True

    async def close(self, wait: Callable[[Callable[[], bool]], Awaitable[object]]) -> None:
        """Stop every reader thread; `wait` runs each thread's blocking wait off the loop."""
        self._closed = True
        threads = [t for t in (self._current, *self._retired) if t is not None]
        self._current, self._retired = None, []
        for thread in threads:
            thread.stop()
        for thread in threads:
            await wait(thread.wait)
            thread.deleteLater()

    def _retire(self) -> None:
        if self._current is not None:
            self._current.stop()
            self._retired.append(self._current)
            self._current = None

    def _reap(self) -> None:
        if self._closed:  # close() waits for every thread and deletes them itself
            return
        for thread in [t for t in self._retired if t.isFinished()]:
            self._retired.remove(thread)
            thread.deleteLater()

    def _on_loaded(self, job: Job, texts: dict[int, str]) -> None:
        if self.job_id == job.id:
            self.loaded.emit(job, texts)

    def _on_events(self, job_id: str, events: list[Event]) -> None:
        if self.job_id == job_id:
            self.events.emit(events)

    def _on_changed(self, job: Job) -> None:
        if self.job_id == job.id:
            self.changed.emit(job)

    def _on_gone(self, job_id: str) -> None:
        if self.job_id == job_id:
            self._retire()
            self.gone.emit()
