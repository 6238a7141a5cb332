"""`serve` runs a remote worker when endpoints are set; `models` lists the endpoints' models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.remote.conftest import Remote
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.queue.celery_app import REMOTE_QUEUE
from worker.testing.harness import ServeProcess, wait_until

pytestmark = pytest.mark.slow


def endpoints_env(remote: Remote, *extra: Mapping[str, object]) -> str:
    lab = {"name": "remote", "base_url": remote.base_url, "api_key_env": "REMOTE_TOKEN"}
    return json.dumps([lab, *extra])


def test_serve_runs_and_restarts_a_remote_worker(
    remote: Remote, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_TOKEN", remote.api.token)
    env = {"PROMPTSPOOL_ENDPOINTS": endpoints_env(remote), "PROMPTSPOOL_HTTP_PORT": "0",
           "PROMPTSPOOL_HEARTBEAT_TTL": "2"}  # fmt: skip
    monkeypatch.setenv("PROMPTSPOOL_ENDPOINTS", env["PROMPTSPOOL_ENDPOINTS"])
    serve = ServeProcess.start(isolated_home, env)
    try:
        client = serve.client()

        def remote_workers() -> list[dict[str, object]]:
            return [w for w in client.workers() if w.get("queue") == REMOTE_QUEUE]

        wait_until(lambda: len(remote_workers()) == 1, timeout=60, what="a remote worker")
        [job_id] = client.submit([JobSpec(prompt="Once", model="remote/stories260K", raw=True,
                                          max_tokens=16)])  # fmt: skip
        assert client.wait(job_id, timeout=90).state is JobState.succeeded
        pid = int(str(remote_workers()[0]["pid"]))
        os.kill(pid, signal.SIGKILL)
        serve.wait_line("remote worker", timeout=60)
        wait_until(
            lambda: [w["pid"] for w in remote_workers()] not in ([], [pid]),
            timeout=60, what="the remote worker to be replaced",
        )  # fmt: skip
        [again] = client.submit([JobSpec(prompt="Twice", model="remote/stories260K", raw=True,
                                         max_tokens=16)])  # fmt: skip
        assert client.wait(again, timeout=90).state is JobState.succeeded
    finally:
        assert serve.stop() == 0


def test_models_lists_local_files_and_each_endpoints_models(
    remote: Remote, isolated_home: Path, tiny_model: Path
) -> None:
    broken = {"name": "gone", "base_url": "http://127.0.0.1:9/v1"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env.update(PROMPTSPOOL_HOME=str(isolated_home), REMOTE_TOKEN=remote.api.token,
               HOME=str(isolated_home),  # no other tools' model folders of this machine
               PROMPTSPOOL_MODEL=str(tiny_model),
               PROMPTSPOOL_ENDPOINTS=endpoints_env(remote, broken))  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "worker", "models", "--json"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1, "an endpoint could not tell"
    listed = json.loads(done.stdout)
    assert [(m["name"], m["source"]) for m in listed["models"]] == [("tiny", "default")]
    assert [m["name"] for m in listed["remote"]] == ["remote/slow", "remote/stories260K"]
    [failure] = listed["failures"]
    assert failure["endpoint"] == "gone" and "cannot be reached" in failure["error"]
    assert "endpoint 'gone'" in done.stderr
    assert remote.api.token not in done.stdout + done.stderr
