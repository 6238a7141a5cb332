"""`list`, `show` and `submit` start light: what they import, seen in real runs on a real queue.

Each command runs as `promptspool` does (`python -m desktop`) under `-X importtime`, which
names every module the process imported; none of the heavy ones below may be among them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker.testing.harness import Queue

# Modules a command that only reads or queues jobs never needs (each costs 50-250 ms to
# import on a 2-core machine): the task queue's machinery, numpy and gguf (the model check
# reads the header itself), llama.cpp, the HTTP API's stack, Qt, and the OpenAI shapes.
NEVER = (
    "numpy", "gguf", "llama_cpp", "psutil", "fastapi", "starlette", "uvicorn", "httpx",
    "PySide6", "worker.engine", "worker.runtime", "worker.api", "worker.hosting",
    "worker.jobs.openai_shape",
)  # fmt: skip
# Reading the queue needs no Celery: only sending a job's message does (`submit`).
READING_NEVER = (*NEVER, "celery", "kombu", "amqp", "billiard", "yaml")


def run_importing(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `promptspool ARGS`; its result, and every module it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "desktop", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    imported = set()
    output = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                imported.add(name)
        else:
            output.append(line)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout,
                                       "\n".join(output)), imported  # fmt: skip


def heavy(imported: set[str], never: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if any(m == n or m.startswith(n + ".") for n in never))


def test_submit_list_and_show_import_nothing_heavy(queue: Queue, tiny_model: Path) -> None:
    submitted, imported = run_importing("submit", "--model", str(tiny_model), "--prompt", "hi")
    assert submitted.returncode == 0, submitted.stderr
    [job_id] = submitted.stdout.split()
    assert "worker.queue.ledger" in imported  # the run is seen (and it did reach the queue)
    assert heavy(imported, NEVER) == []

    listed, imported = run_importing("list")
    assert listed.returncode == 0, listed.stderr
    assert job_id in listed.stdout
    assert heavy(imported, READING_NEVER) == []

    shown, imported = run_importing("show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"job {job_id}: queued")
    assert heavy(imported, READING_NEVER) == []


def test_no_queue_is_said_in_one_line_without_loading_celery(tmp_path: Path) -> None:
    listed, imported = run_importing("list")
    assert listed.returncode == 3
    assert listed.stderr.startswith("promptspool: no PromptSpool queue is running")
    assert heavy(imported, READING_NEVER) == []
