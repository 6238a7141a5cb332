"""The app starts a remote worker when endpoints are set, and its jobs run on the endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from tests.desktop.support import close_app, run_soon
from tests.desktop.test_processes import START_MS, alive
from tests.remote.conftest import Remote, start_remote
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.queue.celery_app import REMOTE_QUEUE
from worker.queue.client import JobClient
from worker.settings import Settings, load_settings


@pytest.fixture
def remote(stories_model: Path, tmp_path: Path) -> Iterator[Remote]:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "stories260K.gguf").symlink_to(stories_model)
    yield from start_remote(folder)


def remote_worker_running(client: JobClient) -> bool:
    return any(w.get("queue") == REMOTE_QUEUE for w in client.workers())


@pytest.mark.slow
def test_the_app_runs_remote_jobs_on_a_remote_worker_it_starts_when_endpoints_appear(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, isolated_home: Path, remote: Remote
) -> None:
    Settings(http_port=0).save()
    controller = Controller(load_settings())
    supervisor = controller.supervisor
    assert supervisor is not None
    try:
        with qtbot.waitSignals([controller.ready, supervisor.worker_started], timeout=START_MS):
            run_soon(qloop, controller.start())
        assert not supervisor.remote.running, "no endpoints, no remote worker"

        # An endpoint added in Settings: the app starts a remote worker for it.
        settings = Settings(http_port=0, endpoints=[remote.endpoint()])
        settings.save()
        controller.commands.apply_settings(load_settings())
        qtbot.waitUntil(lambda: supervisor.remote.running, timeout=START_MS)
        assert supervisor.address is not None
        client = JobClient(supervisor.address, load_settings())
        qtbot.waitUntil(lambda: remote_worker_running(client), timeout=START_MS)
        pid = supervisor.remote.pid
        assert pid is not None
        [job_id] = client.submit([JobSpec(prompt="Once", model="remote/stories260K", raw=True,
                                          max_tokens=16)])  # fmt: skip
        qtbot.waitUntil(lambda: client.get(job_id).state.finished, timeout=START_MS)
        job = client.get(job_id)
        assert job.state is JobState.succeeded and job.output
        client.close()
    finally:
        close_app(qtbot, controller)
    assert not alive(pid), "the app stops the remote worker it started"
