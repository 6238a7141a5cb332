"""Closing and quitting with jobs in the queue: asked first, with or without a tray."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.services.childprocess import ChildProcess
from desktop.services.single_instance import SingleInstance
from desktop.window.quitting import Work, question
from tests.desktop.support import QUIT_MS, run_soon
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue

WAIT_MS = 30_000


def queue_jobs(qtbot: QtBot, desk: Controller, queue: Queue, model: Path, count: int) -> list[str]:
    """`count` jobs that stay queued (no worker runs), as the window counts them."""
    specs = [JobSpec(model=str(model), prompt=f"p{i}", title=f"job {i}") for i in range(count)]
    ids = queue.client.submit(specs)
    qtbot.waitUntil(lambda: desk.quitting.work.queued == count, timeout=WAIT_MS)
    return ids


def answer(box: object, text: str) -> None:
    assert isinstance(box, QMessageBox)
    [button] = [b for b in box.buttons() if b.text() == text]
    button.click()


def waiting(desk: Controller) -> bool:
    """Quitting once the queue is empty."""
    return desk.quitting.waiting


def texts(box: object) -> list[str]:
    assert isinstance(box, QMessageBox)
    return [b.text() for b in box.buttons()]


def test_closing_without_a_tray_asks_and_can_keep_the_queue_running(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    desk.tray.available = False
    assert desk.settings.keep_in_tray
    ids = queue_jobs(qtbot, desk, queue, tiny_model, 3)
    with qtbot.waitSignal(desk.quitting.asked, timeout=WAIT_MS) as asked:
        desk.window.close()
    box = asked.args[0]
    assert "3 jobs queued" in box.text()
    assert set(texts(box)) == {"Keep running", "Quit when done", "Quit now", "Cancel"}
    answer(box, "Keep running")
    assert desk.window.isMinimized() and not desk._quitting  # a taskbar entry to come back by
    # Starting the app again brings the window back (what `run_app` wires).
    first = SingleInstance(tmp_path)
    assert first.acquire()
    first.activated.connect(desk.window.bring_to_front)
    assert SingleInstance(tmp_path).notify_running()
    qtbot.waitUntil(lambda: not desk.window.isMinimized(), timeout=WAIT_MS)
    first.release()
    assert all(queue.client.get(i).state is JobState.queued for i in ids)


def test_closing_without_a_tray_and_quitting_now_keeps_the_jobs_for_the_next_start(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    desk.tray.available = False
    ids = queue_jobs(qtbot, desk, queue, tiny_model, 2)
    with qtbot.waitSignal(desk.quitting.asked, timeout=WAIT_MS) as asked:
        desk.window.close()
    with qtbot.waitSignal(desk.finished, timeout=QUIT_MS):
        answer(asked.args[0], "Quit now")
        qtbot.waitUntil(lambda: desk._quitting, timeout=WAIT_MS)
        # It says at once that it is stopping.
        assert "stopping" in desk.quitting.banner.label.text()
        assert "quitting" in desk.window.windowTitle()
    assert all(queue.client.get(i).state is JobState.queued for i in ids)


def test_cancelling_the_question_keeps_everything(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    desk.tray.available = False
    queue_jobs(qtbot, desk, queue, tiny_model, 1)
    with qtbot.waitSignal(desk.quitting.asked, timeout=WAIT_MS) as asked:
        desk.window.close()
    answer(asked.args[0], "Cancel")
    assert desk.window.isVisible() and not desk.window.isMinimized() and not desk._quitting


def test_closing_with_a_tray_hides_the_window_without_asking(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    desk.tray.available = True
    queue_jobs(qtbot, desk, queue, tiny_model, 2)
    asked: list[object] = []
    desk.quitting.asked.connect(asked.append)
    desk.window.close()
    qtbot.waitUntil(lambda: not desk.window.isVisible(), timeout=WAIT_MS)
    assert not asked and not desk._quitting


def test_closing_without_a_tray_and_with_nothing_to_run_quits(
    qtbot: QtBot, desk: Controller
) -> None:
    desk.tray.available = False
    asked: list[object] = []
    desk.quitting.asked.connect(asked.append)
    with qtbot.waitSignal(desk.finished, timeout=QUIT_MS):
        desk.window.close()
    assert not asked


def test_quit_when_done_waits_for_the_queue_to_empty_and_can_be_called_off(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    desk: Controller,
    queue: Queue,
    tiny_model: Path,
) -> None:
    ids = queue_jobs(qtbot, desk, queue, tiny_model, 2)
    banner = desk.quitting.banner
    with qtbot.waitSignal(desk.quitting.asked, timeout=WAIT_MS) as asked:
        desk.window.actions_by_name["quit"].trigger()  # Ctrl+Q
    assert "Keep running" not in texts(asked.args[0])
    answer(asked.args[0], "Quit when done")
    assert waiting(desk) and banner.isVisibleTo(desk.window)
    assert "Quitting when the queue is empty: 2 jobs queued" in banner.label.text()
    banner.cancel_button.click()  # "Don't quit"
    assert not waiting(desk) and not banner.isVisibleTo(desk.window)
    with qtbot.waitSignal(desk.quitting.asked, timeout=WAIT_MS) as asked:
        desk.tray.quit_requested.emit()  # the tray's Quit asks the same
    answer(asked.args[0], "Quit when done")
    with qtbot.waitSignal(desk.finished, timeout=QUIT_MS):
        run_soon(qloop, desk.commands.cancel(ids))
    assert all(queue.client.get(i).state is JobState.cancelled for i in ids)


def test_the_question_says_what_quitting_would_do() -> None:
    running = Work.of(
        Counter({JobState.running: 1, JobState.loading: 1, JobState.queued: 11}), False
    )
    text, details = question(running, background=True)
    assert text == "2 jobs running, 11 queued."
    assert "Keep running" in details and "Quit when done" in details and "resumes" in details
    paused = Work.of(Counter({JobState.queued: 4}), True)
    assert paused.any and not paused.can_finish  # queued jobs never end while paused
    text, details = question(paused, background=False)
    assert text == "4 jobs queued (the queue is paused)."
    assert "Quit when done" not in details and "Keep running" not in details


class Child(ChildProcess):
    """A child that runs a Python one-liner instead of a worker."""

    def __init__(self, code: str, log_file: Path) -> None:
        super().__init__("worker", "worker", lambda: log_file, lambda: {})
        self.code = code

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.code]


def test_a_clean_exit_or_a_stop_is_not_logged_as_a_warning(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="desktop.services.childprocess")
    clean = Child("pass", tmp_path / "clean.log")
    with qtbot.waitSignal(clean.exited, timeout=WAIT_MS):
        clean.start()
        clean.wanted = False  # it ends by itself, as a worker told to stop does
    stopped = Child("import signal; signal.pause()", tmp_path / "stopped.log")  # until stopped
    with qtbot.waitSignal(stopped.started, timeout=WAIT_MS):
        stopped.start()
    with qtbot.waitSignal(stopped.exited, timeout=WAIT_MS):
        stopping = run_soon(qloop, stopped.stop())  # SIGTERM at quit
    qtbot.waitUntil(stopping.done, timeout=WAIT_MS)
    ends = [r for r in caplog.records if "exited" in r.getMessage() or "crashed" in r.getMessage()]
    assert [r.levelno for r in ends] == [logging.INFO, logging.INFO], caplog.text
    assert "worker exited with code 0" in ends[0].getMessage()


def test_a_failing_child_is_still_a_warning(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="desktop.services.childprocess")
    failing = Child("raise SystemExit(3)", tmp_path / "failing.log")
    with qtbot.waitSignal(failing.exited, timeout=WAIT_MS):
        failing.start()
    stopping = run_soon(qloop, failing.stop())  # no restart
    qtbot.waitUntil(stopping.done, timeout=WAIT_MS)
    [end] = [r for r in caplog.records if "exited with code 3" in r.getMessage()]
    assert end.levelno == logging.WARNING
