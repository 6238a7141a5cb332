"""A finished batch's output and error files: one JSONL line per request, in its file's order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from worker.jobs.job import Job, JobState
from worker.jobs.openai_shape import error_of, response_body

# The error code of a request that the batch itself stopped before it was answered.
_STOPPED = {
    "cancelled": ("batch_cancelled", "the batch was cancelled before this request was answered"),
    "expired": ("batch_expired", "the batch expired before this request was answered"),
}


@dataclass
class BatchResults:
    """The two files' lines and the counts and tokens that go with them."""

    output: list[bytes] = field(default_factory=list)
    errors: list[bytes] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def usage(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip


def batch_results(jobs: Iterable[tuple[str, Job | None]], ending: str) -> BatchResults:
    """The lines for `(job id, job)` pairs (None: the job was cleared from the queue) of a
    batch that ends `ending` ("completed", "cancelled" or "expired"); every job finished."""
    results = BatchResults()
    for job_id, job in jobs:
        results.input_tokens += job.prompt_tokens if job else 0
        results.output_tokens += job.completion_tokens if job else 0
        custom_id = job.origin.custom_id if job and job.origin else None
        line: dict[str, Any] = {"id": f"batch_req_{job_id}", "custom_id": custom_id}
        if job is not None and job.state is JobState.succeeded:
            response = {"status_code": 200, "request_id": job_id, "body": response_body(job)}
            results.output.append(_jsonl({**line, "response": response, "error": None}))
            continue
        results.errors.append(_jsonl({**line, "response": None, "error": _error(job, ending)}))
    return results


def _error(job: Job | None, ending: str) -> dict[str, str]:
    if job is None:
        message = "the request's job was cleared from the queue before the batch ended"
        return {"code": "job_missing", "message": message}
    if job.state is JobState.cancelled and ending in _STOPPED:
        code, message = _STOPPED[ending]
        return {"code": code, "message": message}
    error = error_of(job)
    return {"code": str(error.get("code")), "message": str(error.get("message"))}


def _jsonl(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n"
