"""Cancel, retry, clear and export several jobs through one JobClient (run on a pool thread)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from worker.cli import export_text
from worker.client import JobClient
from worker.ledger import JobStateError, UnknownJobError


@dataclass
class ActionResult:
    """Which jobs an action changed and which it skipped, with the reason."""

    verb: str
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """'Cancelled 3 jobs', 'Retried 1 job; skipped 2 (…)'."""
        count = len(self.done)
        text = f"{self.verb} {count} job{'s' if count != 1 else ''}"
        if self.skipped:
            first = self.skipped[0][1]
            text += f"; skipped {len(self.skipped)} ({first}"
            text += ", …)" if len(self.skipped) > 1 else ")"
        return text


def _each(verb: str, ids: Iterable[str], act: Callable[[str], object]) -> ActionResult:
    result = ActionResult(verb)
    for job_id in ids:
        try:
            act(job_id)
        except (JobStateError, UnknownJobError) as exc:
            result.skipped.append((job_id, str(exc)))
        else:
            result.done.append(job_id)
    return result


def cancel_jobs(client: JobClient, ids: Iterable[str]) -> ActionResult:
    return _each("Cancelled", ids, client.cancel)


def retry_jobs(client: JobClient, ids: Iterable[str]) -> ActionResult:
    return _each("Queued again", ids, client.retry)


def forget_jobs(client: JobClient, ids: Iterable[str]) -> ActionResult:
    return _each("Removed", ids, client.forget)


def export_jobs(client: JobClient, ids: list[str], fmt: str, path: Path) -> int:
    """Write the jobs (with every attempt's output) as Markdown or JSON; how many were written."""
    jobs = client.get_many(ids, with_output=True)
    path.write_text(export_text(jobs, fmt), encoding="utf-8")
    return len(jobs)
