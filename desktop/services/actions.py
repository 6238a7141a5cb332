"""The queue calls behind the app's commands: queue, cancel, retry, clear, export, pause, drop.

Each runs on the client pool, never on the GUI thread; none touches a widget.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from desktop.services.clientpool import ClientPool
from desktop.services.drops import DropOutcome, plan_drop, queue_batch_file, submit_plan
from worker.jobs.export import export_text
from worker.jobs.promptfiles import split_batch_files
from worker.jobs.spec import JobSpec
from worker.queue.client import JobClient
from worker.queue.ledger import JobStateError, UnknownJobError


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


class JobActions:
    """The app's commands on jobs and the queue, awaited from the Qt loop."""

    def __init__(self, pool: ClientPool) -> None:
        self.pool = pool

    async def submit(self, specs: list[JobSpec]) -> list[str]:
        """Queue the jobs (ValueError with the reason when the queue refuses them)."""
        return await self.pool.call(lambda client: client.submit(specs))

    async def cancel(self, ids: list[str]) -> ActionResult:
        return await self.pool.call(lambda client: cancel_jobs(client, ids))

    async def retry(self, ids: list[str]) -> ActionResult:
        return await self.pool.call(lambda client: retry_jobs(client, ids))

    async def forget(self, ids: list[str]) -> ActionResult:
        return await self.pool.call(lambda client: forget_jobs(client, ids))

    async def export(self, ids: list[str], fmt: str, path: Path) -> int:
        return await self.pool.call(lambda client: export_jobs(client, ids, fmt, path))

    async def pause(self) -> None:
        await self.pool.call(lambda client: client.pause())

    async def resume(self) -> int:
        """Let workers take jobs again; how many queued jobs were sent to them."""
        return await self.pool.call(lambda client: client.resume())

    async def drop(self, paths: list[Path], defaults: dict[str, object]) -> DropOutcome:
        """Queue what the dropped files hold, whole files only; what was queued and refused.
        Each OpenAI batch file (a .jsonl of custom_id/method/url/body lines) becomes a batch."""
        batch_files, others = await self.pool.run(split_batch_files, paths)
        outcome = DropOutcome()
        if others:
            names = self.pool.settings.endpoint_names
            plan = await self.pool.run(plan_drop, others, defaults, names)
            outcome = await self.pool.call(lambda client: submit_plan(plan, client.submit))
        limit = int(self.pool.settings.http_max_upload_mb * 1_000_000)
        for item in batch_files:
            queue = functools.partial(
                queue_batch_file, item=item, defaults=defaults, max_bytes=limit
            )
            (await self.pool.call(queue)).add_to(outcome)
        return outcome
