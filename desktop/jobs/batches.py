"""Batches as the window shows them: each batch's jobs counted by state, and how it ended."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from desktop.common.formatting import plural
from worker.jobs.job import FINISHED_STATES, JobState

SHORT_ID = 8  # characters of a batch id shown where room is short, as a short commit hash
PREFIX = "batch_"  # how the queue's batch ids start


def short_id(batch_id: str) -> str:
    """'batch_6f3a2b9c0d1e…' -> '6f3a2b9c': enough to tell a few batches apart."""
    return batch_id.removeprefix(PREFIX)[:SHORT_ID] or batch_id


@dataclass(frozen=True)
class BatchSummary:
    """One batch: its jobs in the table by state, and its end (from the queue's batch event)."""

    batch_id: str
    counts: Counter[JobState] = field(default_factory=Counter)
    ended: str | None = None  # completed | cancelled | failed | expired

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINISHED_STATES)

    def label(self) -> str:
        """'Batch 6f3a2b9c · 7/10' (finished of all) for a compact list."""
        return f"Batch {short_id(self.batch_id)} · {self.finished}/{self.total}"

    def describe(self) -> str:
        """'10 jobs: 7 succeeded, 1 failed, 2 queued · completed'."""
        parts = [f"{self.counts[s]} {s.value}" for s in JobState if self.counts[s]]
        text = f"{plural(self.total, 'job')}: {', '.join(parts)}" if parts else "no jobs listed"
        return f"{text} · {self.ended}" if self.ended else text


def summarize(
    counts: Mapping[str, Counter[JobState]], ended: Mapping[str, str]
) -> list[BatchSummary]:
    """Each batch with jobs in the table, in the order given (the first job's submission)."""
    return [BatchSummary(b, Counter(c), ended.get(b)) for b, c in counts.items()]
