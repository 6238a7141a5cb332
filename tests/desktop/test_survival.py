"""The view survives restarts of the app and of the server; pause and resume from the tray."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from tests.desktop.support import close_app, open_app
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue, broker_is_empty

WAIT_MS = 90_000


def state_of(desk: Controller, job_id: str) -> JobState | None:
    row = desk.jobs.job(job_id)
    return row.state if row is not None else None


def test_reopened_app_shows_every_job_and_resumes_streaming(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, queue: Queue, slow_model: Path, tiny_model: Path
) -> None:
    queue.start_worker()
    [done] = queue.client.submit([JobSpec(model=str(tiny_model), prompt="short", max_tokens=6)])
    queue.wait_state(done, "succeeded")
    [running] = queue.client.submit(
        [JobSpec(model=str(slow_model), prompt="A long story", max_tokens=3000)]
    )
    first = open_app(qtbot, qloop, queue)
    first.window.select_job(running)
    qtbot.waitUntil(lambda: len(first.window.detail.output_text()) > 20, timeout=WAIT_MS)
    close_app(qtbot, first)

    second = open_app(qtbot, qloop, queue)
    try:
        assert second.jobs.ids() == [done, running]
        # The selection comes back, with the text so far, and keeps streaming.
        detail = second.window.detail
        qtbot.waitUntil(lambda: detail.job_id == running, timeout=WAIT_MS)
        seen = len(detail.output_text())
        assert seen > 20
        qtbot.waitUntil(lambda: len(detail.output_text()) > seen + 20, timeout=WAIT_MS)
        second.window.select_job(done)
        finished = queue.client.get(done)
        qtbot.waitUntil(lambda: detail.output_text() == finished.output, timeout=WAIT_MS)
        queue.client.cancel(running)
        qtbot.waitUntil(lambda: state_of(second, running) is JobState.cancelled, timeout=WAIT_MS)
    finally:
        close_app(qtbot, second)


def test_server_restart_is_shown_and_the_view_reconnects(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    ids = queue.client.submit([JobSpec(model=str(tiny_model), prompt=f"p{n}") for n in range(3)])
    qtbot.waitUntil(lambda: desk.jobs.rowCount() == 3, timeout=WAIT_MS)
    status = desk.window.status.queue
    assert status.text() == "Queue connected"
    queue.client.close()  # the test's own connection would outlive the old server
    queue._client = None
    queue.server.stop()
    qtbot.waitUntil(lambda: status.text() == "Queue unreachable", timeout=WAIT_MS)
    queue.server.start()
    qtbot.waitUntil(lambda: status.text() == "Queue connected", timeout=WAIT_MS)
    assert desk.jobs.ids() == ids
    [later] = queue.client.submit([JobSpec(model=str(tiny_model), prompt="after the restart")])
    qtbot.waitUntil(lambda: desk.jobs.row_of(later) is not None, timeout=WAIT_MS)


def test_pause_and_resume_from_the_tray(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    queue.start_worker()
    desk.tray.pause_action.trigger()
    qtbot.waitUntil(lambda: desk.window.paused and queue.client.is_paused(), timeout=WAIT_MS)
    assert "paused" in desk.window.status.queue.text().lower()
    [job_id] = queue.client.submit([JobSpec(model=str(tiny_model), prompt="wait", max_tokens=4)])
    qtbot.waitUntil(lambda: broker_is_empty(queue.redis), timeout=WAIT_MS)  # the worker took it
    assert queue.client.get(job_id).state is JobState.queued  # ... and left it queued
    desk.tray.pause_action.trigger()
    qtbot.waitUntil(lambda: state_of(desk, job_id) is JobState.succeeded, timeout=WAIT_MS)
    assert not desk.window.paused
