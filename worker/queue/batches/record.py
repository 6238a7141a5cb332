"""A batch as OpenAI's API describes one, read from its hash in the queue's server."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from worker.queue.replies import as_text

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
    "cancelled",
]  # fmt: skip
ENDED: frozenset[str] = frozenset({"failed", "completed", "expired", "cancelled"})
TIMES = ("created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at",
         "failed_at", "expired_at", "cancelling_at", "cancelled_at")  # fmt: skip


class RequestCounts(BaseModel):
    total: int = Field(description="Requests in the batch (0 until its file is checked).")
    completed: int = Field(description="Requests answered (in the output file).")
    failed: int = Field(description="Requests that failed or were cancelled (in the error file).")


class BatchError(BaseModel):
    code: str | None = None
    message: str | None = None
    param: str | None = Field(default=None, description="The field at fault, e.g. body.model.")
    line: int | None = Field(default=None, description="The input file's line (1 = first).")


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class Batch(BaseModel):
    """A batch: its status and times (Unix seconds), live request counts, and its files."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = Field(description="Why the input file was refused, by line.")
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    metadata: dict[str, str] | None = None
    model: str | None = Field(default=None, description="The model its first request names.")
    usage: BatchUsage | None = Field(default=None, description="Tokens, once it ended.")

    @property
    def ended(self) -> bool:
        return self.status in ENDED


def decode_batch(batch_id: str, row: Any, counts: RequestCounts | None = None) -> Batch:
    """The batch from its hash; `counts` (live ones) replace the stored counts."""
    fields = {as_text(k): as_text(v) for k, v in row.items()}
    times = {name: int(float(fields[name])) for name in TIMES if fields.get(name)}
    errors = json.loads(fields["errors"]) if fields.get("errors") else None
    usage = json.loads(fields["usage"]) if fields.get("usage") else None
    stored = RequestCounts(
        total=int(fields.get("total") or 0),
        completed=int(fields.get("completed") or 0),
        failed=int(fields.get("failed") or 0),
    )
    return Batch(
        id=batch_id,
        endpoint=fields["endpoint"],
        errors=BatchErrors(data=errors) if errors else None,
        input_file_id=fields["input_file_id"],
        completion_window=fields["completion_window"],
        status=fields["status"],
        output_file_id=fields.get("output_file_id") or None,
        error_file_id=fields.get("error_file_id") or None,
        request_counts=counts or stored,
        metadata=json.loads(fields["metadata"]) if fields.get("metadata") else None,
        model=fields.get("model") or None,
        usage=BatchUsage.model_validate(usage) if usage else None,
        **times,
    )
