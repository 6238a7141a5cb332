"""Helpers the fault, pause and security suites share."""

from __future__ import annotations

from pathlib import Path

from worker.jobs.job import Job, JobState
from worker.jobs.spec import JobSpec

FAST_TTL = {"PROMPTSPOOL_HEARTBEAT_TTL": "2"}


def spec(model: Path, **fields: object) -> JobSpec:
    return JobSpec.model_validate({"model": str(model), "prompt": "Once upon a time", **fields})


def succeeded_once(job: Job) -> bool:
    """The job succeeded, and exactly one of its attempts did (its output is that attempt's)."""
    done = [a for a in job.attempts if a.state is JobState.succeeded]
    return job.state is JobState.succeeded and len(done) == 1 and done[0].output == job.output
