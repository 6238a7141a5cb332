"""Job-finished notifications, several finishing together summed up in one; batch ends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.common.formatting import plural
from worker.jobs.job import JobState

COALESCE_MS = 1500


@dataclass(frozen=True)
class Finished:
    job_id: str
    title: str
    state: JobState
    error: str | None = None


@dataclass(frozen=True)
class Notification:
    title: str
    message: str
    job_id: str  # the job a click opens


def compose(finished: list[Finished]) -> Notification:
    """One notification for jobs that finished together."""
    failed = [f for f in finished if f.state is JobState.failed]
    if len(finished) == 1:
        job = finished[0]
        if failed:
            return Notification("Job failed", f"{job.title}: {job.error or 'failed'}", job.job_id)
        return Notification("Job finished", job.title, job.job_id)
    message = f"{plural(len(finished), 'job')} finished"
    if failed:
        message += f", {len(failed)} failed"
    target = failed[0] if failed else finished[-1]
    return Notification("PromptSpool", message, target.job_id)


def compose_batch(batch_id: str, state: str, counts: Mapping[str, object]) -> Notification:
    """The notification for a batch that ended, from its event's request counts (total,
    completed, failed); a click shows the batch's jobs."""

    def number(name: str) -> int:
        value = counts.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    total, completed, failed = number("total"), number("completed"), number("failed")
    title = f"Batch {state}" if state else "Batch finished"
    message = batch_id
    if total:
        message += f": {completed} of {plural(total, 'request')} succeeded"
        message += f", {failed} failed" if failed else ""
    return Notification(title, message, "")


class Notifier(QObject):
    """Collects finished jobs for a moment, then emits one `notified(title, message, job_id)`;
    a batch's jobs are told once, when the batch ends (`batch_notified(title, message, batch)`).

    The signals fire whether or not a system tray can show them (tests and the window use them).
    """

    notified = Signal(str, str, str)
    batch_notified = Signal(str, str, str)

    def __init__(self, enabled: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.enabled = enabled
        self._pending: list[Finished] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self.flush)

    def job_finished(
        self,
        job_id: str,
        title: str,
        state: JobState,
        error: str | None,
        batch: str | None = None,
    ) -> None:
        """A job ended; one of a batch is told with its batch instead."""
        if not self.enabled or batch or state not in (JobState.succeeded, JobState.failed):
            return
        if any(f.job_id == job_id for f in self._pending):
            return
        self._pending.append(Finished(job_id, title, state, error))
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        self._timer.stop()
        pending, self._pending = self._pending, []
        if pending and self.enabled:
            note = compose(pending)
            self.notified.emit(note.title, note.message, note.job_id)

    def batch_finished(self, batch_id: str, state: str, counts: Mapping[str, object]) -> None:
        """A batch ended (completed, cancelled, failed or expired): told at once."""
        if self.enabled and batch_id:
            note = compose_batch(batch_id, state, counts)
            self.batch_notified.emit(note.title, note.message, batch_id)
