"""The window over a real queue and worker: editor, live output, cancel and retry, notifications."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.jobsmodel import Column
from tests.desktop_support import GUI_MARKS, desk_fixture, qloop_fixture  # noqa: F401
from tests.harness import Queue
from worker.jobs import JobState
from worker.spec import JobSpec

pytestmark = GUI_MARKS
WAIT_MS = 90_000


def state_of(desk: Controller, job_id: str) -> JobState | None:
    row = desk.jobs.job(job_id)
    return row.state if row is not None else None


def attempt_of(desk: Controller, job_id: str) -> int:
    row = desk.jobs.job(job_id)
    return row.attempt if row is not None else 0


def activate(qtbot: QtBot, desk: Controller) -> None:
    desk.window.activateWindow()
    qtbot.waitUntil(desk.window.isActiveWindow)


def test_editor_submission_streams_into_the_detail_pane(
    qtbot: QtBot, desk: Controller, queue: Queue, slow_model: Path
) -> None:
    queue.start_worker()
    editor = desk.window.editor
    desk.choose_model(str(slow_model))
    editor.prompt.setPlainText("Once upon a time")
    editor.max_tokens.setValue(300)
    editor.seed.setValue(5)
    activate(qtbot, desk)
    editor.prompt.setFocus()  # Ctrl+Enter belongs to the editor
    with qtbot.waitSignal(desk.submitted, timeout=WAIT_MS) as submitted:
        QTest.keyClick(editor.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    [job_id] = submitted.args[0]
    assert editor.prompt.toPlainText() == ""  # ready for the next prompt
    qtbot.waitUntil(lambda: desk.window.detail.job_id == job_id, timeout=WAIT_MS)
    # Text arrives while the job still runs: it streams, it is not loaded at the end.
    qtbot.waitUntil(
        lambda: (
            state_of(desk, job_id) is JobState.running and len(desk.window.detail.output_text()) > 0
        ),
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: state_of(desk, job_id) is JobState.succeeded, timeout=WAIT_MS)
    job = queue.client.get(job_id)
    assert job.spec.seed == 5 and job.spec.max_tokens == 300
    qtbot.waitUntil(lambda: desk.window.detail.output_text() == job.output, timeout=WAIT_MS)
    assert job.output
    row = desk.jobs.row_of(job_id)
    assert row is not None
    assert desk.jobs.data(desk.jobs.index(row, Column.PROGRESS)) == "300 tokens"


def test_empty_prompt_or_no_model_is_explained_not_queued(desk: Controller) -> None:
    editor = desk.window.editor
    editor.picker.set_models([])
    editor.prompt.setPlainText("hello")
    editor.submit()
    assert "choose a model" in editor.message.text()
    assert desk.jobs.rowCount() == 0


def test_cancel_and_retry_several_jobs_from_the_ui(
    qtbot: QtBot, desk: Controller, queue: Queue, slow_model: Path
) -> None:
    queue.start_worker()
    specs = [JobSpec(model=str(slow_model), prompt=f"Story {n}", max_tokens=3000) for n in range(3)]
    first, second, third = queue.client.submit(specs)
    qtbot.waitUntil(lambda: state_of(desk, first) is JobState.running, timeout=WAIT_MS)
    table = desk.window.table
    # Two queued jobs at once with the Delete key.
    activate(qtbot, desk)
    table.setFocus()
    table.select_job(second)
    index = table.proxy.mapFromSource(desk.jobs.index(desk.jobs.row_of(third) or 0, 0))
    table.selectionModel().select(
        index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    )
    assert set(table.selected_ids()) == {second, third}
    QTest.keyClick(table, Qt.Key.Key_Delete)
    qtbot.waitUntil(
        lambda: (
            state_of(desk, second) is JobState.cancelled
            and state_of(desk, third) is JobState.cancelled
        ),
        timeout=WAIT_MS,
    )
    # The running one from the detail pane's button, once text streamed in.
    table.select_job(first)
    detail = desk.window.detail
    qtbot.waitUntil(lambda: detail.job_id == first and detail.output_text() != "", timeout=WAIT_MS)
    QTest.mouseClick(detail.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state_of(desk, first) is JobState.cancelled, timeout=WAIT_MS)
    assert queue.client.get(first).output  # the partial output is kept
    # Retry all three with Ctrl+R; the first runs again, the others queue behind it.
    table.selectAll()
    with qtbot.waitSignal(desk.action_finished, timeout=WAIT_MS) as retried:
        QTest.keyClick(table, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert sorted(retried.args[0].done) == sorted([first, second, third])
    qtbot.waitUntil(lambda: all(attempt_of(desk, j) == 2 for j in (first, second, third)))
    qtbot.waitUntil(lambda: detail.tabs.tabText(2) == "Attempts (2)", timeout=WAIT_MS)
    # "Cancel all queued", then the running one.
    cancel_queued = desk.window.actions_by_name["cancel_queued"]
    qtbot.waitUntil(cancel_queued.isEnabled, timeout=WAIT_MS)  # enabled: there are queued jobs
    with qtbot.waitSignal(desk.action_finished, timeout=WAIT_MS):
        cancel_queued.trigger()
    qtbot.waitUntil(
        lambda: sum(state_of(desk, j) is JobState.cancelled for j in (first, second, third)) >= 2,
        timeout=WAIT_MS,
    )
    with qtbot.waitSignal(desk.action_finished, timeout=WAIT_MS):
        desk.window.cancel_requested.emit([first, second, third])
    qtbot.waitUntil(
        lambda: all(state_of(desk, j) is JobState.cancelled for j in (first, second, third)),
        timeout=WAIT_MS,
    )
    first_job = queue.client.get(first)
    assert [a.number for a in first_job.attempts] == [1, 2]
    assert first_job.attempts[0].output  # earlier attempts stay viewable


def test_notification_when_a_job_finishes_opens_it(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    queue.start_worker()
    with qtbot.waitSignal(desk.notifier.notified, timeout=WAIT_MS) as note:
        [job_id] = queue.client.submit(
            [JobSpec(model=str(tiny_model), prompt="Tell me", title="bedtime story", max_tokens=8)]
        )
    title, message, clicked = note.args
    assert (title, message, clicked) == ("Job finished", "bedtime story", job_id)
    desk.tray.job_requested.emit(clicked)  # what clicking the notification does
    assert desk.window.table.current_job() == job_id
    qtbot.waitUntil(lambda: desk.window.detail.job_id == job_id, timeout=WAIT_MS)
