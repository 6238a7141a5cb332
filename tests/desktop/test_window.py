"""The window over a real queue and worker: editor, live output, cancel and retry, notifications."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.jobs.model import Column
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue

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
    desk.commands.choose_model(str(slow_model))
    editor.prompt.setPlainText("Once upon a time")
    editor.sampling.box("max_tokens").setValue(300)
    editor.seed.setValue(5)
    activate(qtbot, desk)
    editor.prompt.setFocus()  # Ctrl+Enter belongs to the editor
    with qtbot.waitSignal(desk.commands.submitted, timeout=WAIT_MS) as submitted:
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
    # Each command's result is awaited before the next: the state change can reach the
    # table before the command reports, and a late report must not pass for the next one.
    with qtbot.waitSignal(desk.commands.action_finished, timeout=WAIT_MS) as deleted:
        QTest.keyClick(table, Qt.Key.Key_Delete)
    assert sorted(deleted.args[0].done) == sorted([second, third])
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
    with qtbot.waitSignal(desk.commands.action_finished, timeout=WAIT_MS) as cancelled:
        QTest.mouseClick(detail.cancel_button, Qt.MouseButton.LeftButton)
    assert cancelled.args[0].done == [first]
    qtbot.waitUntil(lambda: state_of(desk, first) is JobState.cancelled, timeout=WAIT_MS)
    assert queue.client.get(first).output  # the partial output is kept
    # Retry all three with Ctrl+R; the first runs again, the others queue behind it.
    table.selectAll()
    with qtbot.waitSignal(desk.commands.action_finished, timeout=WAIT_MS) as retried:
        QTest.keyClick(table, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert retried.args[0].verb == "Queued again"
    assert sorted(retried.args[0].done) == sorted([first, second, third])
    qtbot.waitUntil(lambda: all(attempt_of(desk, j) == 2 for j in (first, second, third)))
    qtbot.waitUntil(lambda: detail.tabs.tabText(2) == "Attempts (2)", timeout=WAIT_MS)
    # "Cancel all queued", then the running one.
    cancel_queued = desk.window.actions_by_name["cancel_queued"]
    qtbot.waitUntil(cancel_queued.isEnabled, timeout=WAIT_MS)  # enabled: there are queued jobs
    with qtbot.waitSignal(desk.commands.action_finished, timeout=WAIT_MS):
        cancel_queued.trigger()
    qtbot.waitUntil(
        lambda: sum(state_of(desk, j) is JobState.cancelled for j in (first, second, third)) >= 2,
        timeout=WAIT_MS,
    )
    with qtbot.waitSignal(desk.commands.action_finished, timeout=WAIT_MS):
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


def test_jobs_from_the_window_carry_every_sampling_default_of_the_settings(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    """min-p and the repeat penalty too, as the command line has them: one source."""
    desk.commands.open_settings()
    dialog = desk.commands.settings_dialog
    assert dialog is not None
    chosen = {"min_p": 0.2, "repeat_penalty": 1.3, "temperature": 0.4, "max_tokens": 9}
    dialog.sampling.set_values(chosen)
    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        dialog.save()
    assert {k: getattr(desk.settings, k) for k in chosen} == chosen
    desk.commands.choose_model(str(tiny_model))
    desk.window.editor.prompt.setPlainText("typed")
    with qtbot.waitSignal(desk.commands.submitted, timeout=WAIT_MS) as submitted:
        desk.window.editor.submit()
    [typed] = submitted.args[0]
    (tmp_path / "dropped.txt").write_text("dropped", encoding="utf-8")
    with qtbot.waitSignal(desk.commands.drop_finished, timeout=WAIT_MS) as dropped:
        desk.window.files_dropped.emit([tmp_path / "dropped.txt"])
    [dropped_id] = dropped.args[0].job_ids
    for job_id in (typed, dropped_id):
        spec = queue.client.get(job_id, with_output=False).spec
        assert {k: getattr(spec, k) for k in chosen} == chosen
