"""The `promptspool` command line as a user runs it: real processes, real queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue, broker_is_empty, wait_until

CLI = [sys.executable, "-m", "worker"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_submit_wait_json_and_show(running_queue: Queue, stories_model: Path) -> None:
    done = run("submit", "--model", str(stories_model), "--prompt", "Once upon a time",
               "--max-tokens", "24", "--seed", "1", "--wait", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    [job] = json.loads(done.stdout)
    assert job["state"] == "succeeded"
    shown = json.loads(run("show", job["id"], "--json").stdout)
    for field in ("id", "state", "attempts", "model", "output", "error", "created_at",
                  "started_at", "finished_at", "prompt_tokens", "completion_tokens",
                  "tokens_per_second"):  # fmt: skip
        assert field in shown, field
    assert shown["output"] == job["output"] != ""
    assert shown["completion_tokens"] == 24


def test_submit_files_queues_good_and_names_refused(
    running_queue: Queue, tmp_path: Path, tiny_model: Path
) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "a.txt").write_text("The cat sat")
    (folder / "b.md").write_text("# Title\nA dog ran")
    (folder / "bad.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "x", "max_tokens": -1}\n')
    done = run("submit", str(folder), "--model", str(tiny_model), "--max-tokens", "3")
    assert done.returncode == 1
    ids = done.stdout.split()
    assert len(ids) == 2
    assert "bad.jsonl" in done.stderr and "line 2" in done.stderr and "max_tokens" in done.stderr
    titles = {job["title"] for job in json.loads(run("list", "--json").stdout)}
    assert titles == {"a.txt", "b.md"}


def test_submit_lists_every_bad_line_of_a_jsonl_file(
    queue: Queue, tmp_path: Path, tiny_model: Path
) -> None:
    (tmp_path / "good.txt").write_text("The cat sat")
    bad = tmp_path / "jobs.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b", "temprature": 0.5}\n{"prompt": "c"}\n'
                   '{"prompt": "d", "max_tok')  # a truncated last line  # fmt: skip
    done = run("submit", str(tmp_path / "good.txt"), str(bad), "--model", str(tiny_model))
    assert done.returncode == 1
    typo = "line 2: field 'temprature': unknown field; did you mean 'temperature'?"
    assert done.stderr.splitlines() == [
        f"promptspool: refused {bad}: {typo} (and 1 more bad line)",
        f"  {typo}",
        "  line 4: invalid JSON at column 17: Unterminated string starting at",
    ]
    [job_id] = done.stdout.split()  # the good file only: nothing of the bad one
    assert [job.id for job in queue.client.list()] == [job_id]


def test_submit_names_the_field_a_misspelt_one_meant(
    queue: Queue, tmp_path: Path, tiny_model: Path
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"prompt": "hi", "max_token": 5}))
    done = run("submit", str(path), "--model", str(tiny_model))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"promptspool: refused {path}: field 'max_token': unknown field; "
        "did you mean 'max_tokens'?\n"
    )
    assert queue.client.list() == []


def test_watch_replays_and_exit_codes(
    running_queue: Queue, tiny_model: Path, slow_model: Path
) -> None:
    q = running_queue
    ok = run("submit", "--model", str(tiny_model), "--prompt", "hi", "--max-tokens", "5", "--wait")
    job_id = ok.stdout.strip()
    watched = run("watch", job_id)
    assert watched.returncode == 0
    assert watched.stdout.rstrip("\n") == q.client.get(job_id).output

    long_job = run("submit", "--model", str(slow_model), "--prompt", "hi", "--max-tokens", "5000")
    long_id = long_job.stdout.strip()
    watcher = subprocess.Popen([*CLI, "watch", long_id], stdout=subprocess.DEVNULL)
    q.wait_tokens(long_id)
    assert run("cancel", long_id).returncode == 0
    assert watcher.wait(60) == 2


def test_no_queue_fails_at_once_with_exit_3() -> None:
    done = run("list", timeout=20)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "promptspool serve" in lines[0]


@pytest.mark.parametrize("command", ["show", "watch", "cancel", "retry"])
def test_unknown_job_id(running_queue: Queue, command: str) -> None:
    done = run(command, "nosuchjob")
    assert done.returncode == 1
    assert "no job with id 'nosuchjob'" in done.stderr


def test_bad_model_is_refused_by_name(running_queue: Queue, tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("not a model")
    done = run("submit", "--model", str(fake), "--prompt", "hi")
    assert done.returncode == 1
    assert str(fake) in done.stderr and "not a GGUF file" in done.stderr
    assert json.loads(run("list", "--json").stdout) == []


def test_export_formats(running_queue: Queue, tmp_path: Path, tiny_model: Path) -> None:
    ids = run("submit", "--model", str(tiny_model), "--prompt", "one", "--prompt", "two",
              "--max-tokens", "4", "--wait").stdout.split()  # fmt: skip
    assert len(ids) == 2
    md = tmp_path / "out.md"
    assert run("export", "--format", "md", "-o", str(md)).returncode == 0
    assert md.read_text().count("### Output") == 2
    lines = run("export", ids[0], "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ids[0]]
    assert len(json.loads(run("export", "--format", "json").stdout)) == 2


def test_export_writes_iso_times_parameters_and_inert_html(
    queue: Queue, tmp_path: Path, tiny_model: Path
) -> None:
    spec = JobSpec(model=str(tiny_model), prompt="<script>alert(1)</script>", seed=7,
                   temperature=0.25, title="<img src=x onerror=alert(1)>")  # fmt: skip
    [job_id] = queue.client.submit([spec])
    [job] = json.loads(run("export", job_id, "--format", "json").stdout)
    created = datetime.fromisoformat(job["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(created.timestamp() - queue.client.get(job_id).created_at) < 0.001
    md = run("export", job_id, "--format", "md").stdout
    assert "temperature `0.25`" in md and "seed `7`" in md and "priority normal" in md
    assert "```text\n<script>alert(1)</script>\n```" in md  # in a code block: shown, not run
    assert "<img" not in md and "&lt;img src=x onerror=alert\\(1\\)&gt;" in md


def test_serve_starts_runs_and_stops_cleanly(isolated_home: Path, tiny_model: Path) -> None:
    serve = subprocess.Popen([*CLI, "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)  # fmt: skip
    try:
        assert serve.stdout is not None
        assert any("queue ready" in line for line in serve.stdout), "serve ended before ready"
        done = run(
            "submit", "--model", str(tiny_model), "--prompt", "x", "--max-tokens", "3", "--wait"
        )
        assert done.returncode == 0, done.stderr
        server_pid = int((isolated_home / "run" / "server.pid").read_text())
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(server_pid, 0)
        assert run("list").returncode == 3
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if serve.stdout is not None:
            serve.stdout.close()


def test_workers_lists_slots_and_batch_figures(running_queue: Queue, tiny_model: Path) -> None:
    [job_id] = running_queue.client.submit([JobSpec(prompt="hi", model=str(tiny_model),
                                                    max_tokens=8, seed=1)])  # fmt: skip
    running_queue.client.wait(job_id, timeout=60)

    def reported() -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = json.loads(run("workers", "--json").stdout)
        return workers

    # The figures arrive with the worker's next heartbeat.
    wait_until(lambda: any((w.get("batch") or {}).get("steps") for w in reported()),
               timeout=60, what="batch figures in the worker's heartbeat")  # fmt: skip
    [worker] = reported()
    assert worker["model"] == str(tiny_model) and worker["slots"] == 1
    table = run("workers")
    assert table.returncode == 0, table.stderr
    header, line = table.stdout.splitlines()
    assert header.split()[:4] == ["WORKER", "HOST", "SLOTS", "JOBS"]
    assert line.split()[0] == worker["id"] and line.endswith("tiny.gguf")
    assert "ms" in line  # decode and host time per step


def test_workers_without_any_worker(queue: Queue) -> None:
    listed = run("workers")
    assert listed.returncode == 0, listed.stderr
    assert "no worker is running" in listed.stdout


def test_pause_keeps_jobs_queued_until_resume(running_queue: Queue, tiny_model: Path) -> None:
    paused = run("pause")
    assert paused.returncode == 0 and "queue paused" in paused.stdout
    assert "already paused" in run("pause").stdout
    client = running_queue.client
    [job_id] = client.submit([JobSpec(prompt="hi", model=str(tiny_model), max_tokens=4)])
    wait_until(lambda: broker_is_empty(running_queue.redis), what="the worker took the message")
    assert client.get(job_id).state is JobState.queued  # ... and left the job queued
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "queue resumed: 1 queued job sent to the workers"
    assert client.wait(job_id, timeout=60).state is JobState.succeeded
    assert run("resume").stdout.startswith("the queue was not paused")


@pytest.mark.parametrize("json_output", [False, True])
def test_submitting_n_jobs_costs_the_server_o_n_work(
    queue: Queue, tiny_model: Path, tmp_path: Path, json_output: bool
) -> None:
    """A 100,000-line file once took hours: every job's queue position read the whole queue.
    Now a submit makes a bounded number of server calls per job, and never reads the whole
    queue per job. (Its speed is measured by `python -m bench bulk_submit`.)"""
    count = 400
    path = tmp_path / "many.jsonl"
    path.write_text("".join(f'{{"prompt": "p{n}"}}\n' for n in range(count)), encoding="utf-8")
    queue.redis.config_resetstat()
    done = run(
        "submit", str(path), "--model", str(tiny_model), *(["--json"] if json_output else [])
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout) if json_output else done.stdout.split()
    assert len(listed) == count
    stats: Any = queue.redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    assert calls.get("zrange", 0) <= 1, calls
    assert sum(calls.values()) <= 20 * count, calls  # Lua scripts count the calls they make
