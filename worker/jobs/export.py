"""Jobs written out for people and programs: Markdown, a JSON list, or JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.jobs.job import Job, RunRecord

FORMATS = ("md", "json", "jsonl")

# A job's times as the ledger keeps them (seconds since the epoch); exports write ISO 8601.
TIME_FIELDS = ("created_at", *(n for n in RunRecord.model_fields if n.endswith("_at")))
# Spec fields Markdown shows in their own place, not among the settings.
_SHOWN_APART = ("prompt", "messages", "model", "title", "system", "priority")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#|~])")  # HTML is escaped apart


def export_text(jobs: Sequence[Job], fmt: str) -> str:
    """Jobs as Markdown, a JSON list or JSON lines (times as ISO 8601 in UTC)."""
    if fmt == "json":
        return json.dumps([job_record(job) for job in jobs], indent=2, ensure_ascii=False) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(job_record(job), ensure_ascii=False) + "\n" for job in jobs)
    return "\n".join(_markdown(job) for job in jobs)


def job_record(job: Job) -> dict[str, Any]:
    """The job as JSON, its times (attempts' too) as ISO 8601 strings in UTC."""
    record = _iso_times(job.model_dump(mode="json"))
    record["attempts"] = [_iso_times(attempt) for attempt in record.get("attempts", [])]
    return record


def iso_time(seconds: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 in UTC: '2026-12-01T13:05:17.123Z'."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fenced(text: str) -> str:
    """A fenced code block holding `text` exactly: its fence is longer than any run of
    backticks in it, so nothing inside (HTML, Markdown) is rendered."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}{'' if text.endswith(chr(10)) else chr(10)}{fence}\n"


def inline_code(text: str) -> str:
    """One line of text as a code span: shown as it is, whatever backticks it holds."""
    text = _CONTROL.sub(" ", text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def plain(text: str) -> str:
    """One line of text that Markdown shows as it is: no HTML, links or emphasis."""
    text = _CONTROL.sub(" ", text).strip()
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _PUNCTUATION.sub(r"\\\1", text)


def _iso_times(record: dict[str, Any]) -> dict[str, Any]:
    return {k: iso_time(v) if k in TIME_FIELDS else v for k, v in record.items()}


def _markdown(job: Job) -> str:
    spec = job.spec
    facts = [
        f"- **Job** {inline_code(job.id)} · {job.state.value} · priority {job.priority}"
        + (f" · attempt {job.attempt}" if job.attempt > 1 else ""),
        f"- **Model** {inline_code(Path(job.model).name)}",
        f"- **Settings** {_settings(job)}",
        f"- **Times** {_times(job)}",
        f"- **Tokens** {_tokens(job)}",
    ]
    if job.error:
        facts.append(f"- **Error** {plain(job.error)}")
    parts = [f"## {plain(job.title) or inline_code(job.id)}\n", "\n".join(facts) + "\n"]
    if spec.system:
        parts.append(f"### System prompt\n\n{fenced(spec.system)}")
    if spec.messages is not None:
        chat = "\n".join(f"**{m.role}**\n\n{fenced(m.content)}" for m in spec.messages)
        parts.append(f"### Messages\n\n{chat}")
    else:
        parts.append(f"### Prompt\n\n{fenced(spec.prompt or '')}")
    parts.append(f"### Output\n\n{fenced(job.output) if job.output else '*(no output)*'}\n")
    return "\n".join(parts)


def _settings(job: Job) -> str:
    """The spec's fields that differ from their defaults, compactly; 'defaults' if none."""
    changed = job.spec.model_dump(mode="json", exclude_defaults=True)
    shown = [
        f"{name} {inline_code(_value(value))}"
        for name, value in changed.items()
        if name not in _SHOWN_APART
    ]
    return " · ".join(shown) or "defaults"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _times(job: Job) -> str:
    times = [f"created {_when(job.created_at)}"]
    if job.started_at is not None:
        times.append(f"started {_when(job.started_at)}")
    if job.finished_at is not None:
        times.append(f"finished {_when(job.finished_at)}")
    if job.duration is not None and job.finished_at is not None:
        times.append(f"took {job.duration:.1f} s")
    return " · ".join(times)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _tokens(job: Job) -> str:
    tokens = [f"{job.prompt_tokens} prompt", f"{job.completion_tokens} generated"]
    if job.tokens_per_second:
        tokens.append(f"{job.tokens_per_second:.1f} tok/s")
    if job.finish_reason:
        tokens.append(f"stopped: {job.finish_reason}")
    return " · ".join(tokens)
