"""Jobs written out for people and programs: Markdown, a JSON list, or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from worker.jobs.job import Job

FORMATS = ("md", "json", "jsonl")


def export_text(jobs: Sequence[Job], fmt: str) -> str:
    """Jobs as Markdown, a JSON list or JSON lines."""
    if fmt == "json":
        return json.dumps([job.model_dump(mode="json") for job in jobs], indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(job.model_dump_json() + "\n" for job in jobs)
    parts = []
    for job in jobs:
        prompt = job.spec.prompt or "\n".join(
            f"{m.role}: {m.content}" for m in job.spec.messages or []
        )
        parts.append(
            f"## {job.title}\n\n*{job.id} · {job.state.value} · {Path(job.model).name}*\n\n"
            f"### Prompt\n\n{prompt}\n\n### Output\n\n{job.output}\n"
            + (f"\n**Error:** {job.error}\n" if job.error else "")
        )
    return "\n".join(parts)
