"""The output view and the detail pane: Markdown safely, cheap streaming, attempts, cancels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolButton
from pytestqt.qtbot import QtBot

from desktop.jobs.filterbar import FilterBar
from desktop.jobs.model import Column, JobsModel
from desktop.jobs.row import JobRow
from desktop.services.uistate import UiState
from desktop.window import outputview
from desktop.window.detail import DetailPane
from desktop.window.mainwindow import MainWindow
from desktop.window.outputview import OutputView
from tests.desktop.test_model import make_job
from worker.jobs.job import Attempt, Job, JobState
from worker.queue.events import Event
from worker.settings import Settings

UNTRUSTED = 'Look: <img src="http://example.com/x.png"> and <script>alert(1)</script> <b>b</b>'
WAIT_MS = 5_000


def view(qtbot: QtBot) -> OutputView:
    output = OutputView(placeholder="No output yet.")
    qtbot.addWidget(output)
    return output


def tokens(text: str, attempt: int = 1) -> Event:
    data = {"type": "tokens", "id": "job000001", "attempt": attempt, "text": text,
            "phase": "generating", "done": 1, "total": 512}  # fmt: skip
    return Event("ps:ev:job000001", "1-0", data)


# --- the output view ----------------------------------------------------------------------


def test_output_renders_markdown_with_code_in_a_monospace_font(qtbot: QtBot) -> None:
    output = view(qtbot)
    output.set_text("# Title\n\nSome **bold** text.\n\n```python\nx = 1\n```\n")
    assert output.toPlainText() == "Title\nSome bold text.\nx = 1"
    block = output.document().findBlock(output.toPlainText().index("x = 1"))
    cursor = QTextCursor(block)
    cursor.movePosition(QTextCursor.MoveOperation.Right)
    font = cursor.charFormat().font()
    assert (
        cursor.charFormat().fontFixedPitch()
        or font.fixedPitch()
        or "monospace" in (cursor.charFormat().fontFamilies() or [])
    )
    assert output.text() == "# Title\n\nSome **bold** text.\n\n```python\nx = 1\n```\n"


def test_html_in_the_output_shows_as_text(qtbot: QtBot) -> None:
    output = view(qtbot)
    output.set_text(UNTRUSTED)
    assert output.toPlainText() == UNTRUSTED
    html = output.toHtml()
    assert "<img" not in html and "<script" not in html and "<b>" not in html


def test_raw_text_shows_the_markdown_source(qtbot: QtBot) -> None:
    output = view(qtbot)
    output.set_text("Some **bold** text.")
    output.set_raw(True)
    assert output.toPlainText() == "Some **bold** text."
    output.append_text(" More.")
    qtbot.waitUntil(lambda: output.toPlainText() == "Some **bold** text. More.", timeout=WAIT_MS)
    output.set_raw(False)
    assert output.toPlainText() == "Some bold text. More."


def test_streaming_markdown_costs_what_it_adds_not_a_render_of_the_whole(qtbot: QtBot) -> None:
    """Each finished block is rendered once as it ends; the paragraph being written shows
    as plain text, and is rendered when the stream ends. No whole-document render."""
    output = view(qtbot)
    output.set_text("")
    before = output.renders
    blocks = [f"Paragraph {n} has **bold** words.\n\n" for n in range(300)]
    for block in blocks:
        for word in block.split(" "):
            output.append_text(word + (" " if not word.endswith("\n") else ""))
    output.append_text("The last one is *still* being written")
    assert output.renders == before  # nothing rendered synchronously per token
    settled = "\n".join(f"Paragraph {n} has bold words." for n in range(300))
    qtbot.waitUntil(
        lambda: output.toPlainText() == settled + "\nThe last one is *still* being written",
        timeout=WAIT_MS,
    )
    output.finish()
    assert output.toPlainText() == settled + "\nThe last one is still being written"
    assert output.renders == before  # the whole text was never rendered again
    fresh = view(qtbot)
    fresh.set_text(output.text())
    assert fresh.toPlainText() == output.toPlainText()  # as a full render shows it


def test_a_very_long_output_streams_as_plain_text(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputview, "MARKDOWN_MAX", 30)
    output = view(qtbot)
    output.set_text("Some **bold** text.")
    assert output.toPlainText() == "Some bold text."
    output.append_text(" And **more** than thirty characters.")
    expected = "Some **bold** text. And **more** than thirty characters."
    qtbot.waitUntil(lambda: output.toPlainText() == expected, timeout=WAIT_MS)
    output.append_text(" End.")
    qtbot.waitUntil(lambda: output.toPlainText() == expected + " End.", timeout=WAIT_MS)


# --- the detail pane ----------------------------------------------------------------------


def pane(qtbot: QtBot) -> DetailPane:
    detail = DetailPane()
    qtbot.addWidget(detail)
    return detail


def retried_job(output: str = "The first attempt's partial text") -> Job:
    first = Attempt(number=1, state=JobState.failed, error="worker lost", output=output,
                    completion_tokens=58, started_at=1000.0, finished_at=1009.0)  # fmt: skip
    return make_job(1, JobState.running, attempt=2, attempts=[first])


def test_after_a_retry_the_output_shows_the_last_attempts_text_until_the_new_one_writes(
    qtbot: QtBot,
) -> None:
    detail = pane(qtbot)
    detail.load(retried_job(), {1: "The first attempt's partial text"})
    assert detail.output.text() == "The first attempt's partial text"
    assert detail.output_text() == ""  # the current attempt's: none yet
    assert not detail.output_note.isHidden()
    assert "attempt 1" in detail.output_note.text()
    detail.apply_events([tokens("old stream", attempt=1)])  # not the shown attempt's
    assert detail.output.text() == "The first attempt's partial text"
    detail.apply_events([tokens("Fresh", attempt=2)])
    assert detail.output.text() == "Fresh"
    assert detail.output_note.isHidden()


def test_a_running_attempt_shows_its_streaming_output(qtbot: QtBot) -> None:
    detail = pane(qtbot)
    now = Attempt(number=1, state=JobState.running, completion_tokens=58, started_at=1001.0)
    job = make_job(1, JobState.running, completion_tokens=58, attempts=[now])
    detail.load(job, {1: "Partial"})
    detail.attempts.setCurrentRow(0)
    assert detail.attempts.item(0).text() == "Attempt 1 · running · 58 tokens so far"
    assert detail.attempt_output.text() == "Partial"
    assert detail.attempt_output.placeholderText() == "No output yet."
    detail.apply_events([tokens(" and more")])
    assert detail.attempt_output.text() == "Partial and more"


def test_a_cancel_is_no_error(qtbot: QtBot) -> None:
    detail = pane(qtbot)
    ended = Attempt(number=1, state=JobState.cancelled, error="cancelled by the user",
                    completion_tokens=58, started_at=1001.0, finished_at=1010.0)  # fmt: skip
    job = make_job(1, JobState.cancelled, error="cancelled by the user", completion_tokens=58,
                   finished_at=1010.0, attempts=[ended])  # fmt: skip
    detail.load(job, {1: "text"})
    assert detail.error.text() == "Cancelled by you after 58 tokens."
    assert detail.error.tint.name() == "#8b8f98"  # grey, not red
    detail.attempts.setCurrentRow(0)
    assert detail.attempt_error.text() == "Cancelled by you after 58 tokens."
    failed = make_job(1, JobState.failed, error="model exploded", finished_at=1010.0)
    detail.update_job(failed)
    assert detail.error.text() == "model exploded"
    assert detail.error.tint.name() == "#dc2626"


# --- the window -----------------------------------------------------------------------------


def window(qtbot: QtBot, tmp_path: Path) -> tuple[MainWindow, JobsModel]:
    jobs = JobsModel()
    main = MainWindow(jobs, Settings(), UiState(tmp_path))
    qtbot.addWidget(main)
    return main, jobs


def test_detail_pane_and_table_agree_on_the_queue_position(qtbot: QtBot, tmp_path: Path) -> None:
    main, jobs = window(qtbot, tmp_path)
    queued = make_job(3, JobState.queued, queue_position=2)
    jobs.sync([JobRow.from_job(make_job(2, JobState.running)), JobRow.from_job(queued)])
    main.show_job(queued, {})
    assert "#2 in queue" in main.detail.meta.toolTip() + main.detail.meta.text()
    jobs.apply_positions({"job000003": 1})  # the job ahead of it started
    assert jobs.data(jobs.index(1, Column.POSITION)) == "1"
    assert "#1 in queue" in main.detail.meta.toolTip() + main.detail.meta.text()


def test_raw_text_toggle_is_remembered(qtbot: QtBot, tmp_path: Path) -> None:
    main, _ = window(qtbot, tmp_path)
    detail = main.detail
    assert not detail.output.raw
    detail.raw_button.click()
    assert detail.raw_button.isChecked()
    assert all(view.raw for view in (detail.output, detail.attempt_output))
    main.ui.sync()
    again, _ = window(qtbot, tmp_path)
    assert again.detail.output.raw and again.detail.raw_button.isChecked()


def test_escape_clears_the_search(qtbot: QtBot) -> None:
    bar = FilterBar()
    qtbot.addWidget(bar)
    searched: list[str] = []
    bar.search_changed.connect(searched.append)
    QTest.keyClicks(bar.search, "tiny")
    assert bar.search.text() == "tiny"
    QTest.keyClick(bar.search, Qt.Key.Key_Escape)
    assert bar.search.text() == "" and searched[-1] == ""


def test_at_1024_by_640_the_useful_columns_and_button_labels_stay(
    qtbot: QtBot, tmp_path: Path
) -> None:
    main, jobs = window(qtbot, tmp_path)
    jobs.sync([JobRow.from_job(make_job(1, JobState.running))])
    main.resize(1024, 640)
    main.show()
    qtbot.waitExposed(main)
    main.show_job(make_job(1, JobState.running), {})
    qtbot.waitUntil(lambda: main.table.width() < 800, timeout=WAIT_MS)
    for column in (Column.TITLE, Column.STATE, Column.PROGRESS, Column.MODEL):
        assert not main.table.isColumnHidden(column), column.name
    detail = main.detail
    for button in detail.findChildren(QToolButton):
        if button in detail._action_buttons():
            assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
            assert button.isVisible() and button.width() >= button.sizeHint().width()


def test_prose_is_not_rendered_again_when_its_stream_ends(qtbot: QtBot) -> None:
    """A last paragraph with no Markdown in it looks the same plain: finish() leaves it,
    sparing the window a layout of it while other jobs stream; with markup it renders."""
    output = view(qtbot)
    output.set_text("")
    output.append_text('Once upon a time, a fox said "hi" to Tom. ' * 30)
    output.flush()
    document = output.document()
    revision = document.revision()
    output.finish()
    assert document.revision() == revision  # not touched
    output.append_text("Then it was **late**.")
    output.flush()
    output.finish()
    assert output.toPlainText().endswith("Then it was late.")


def test_a_huge_last_paragraph_is_rendered_when_shown_again_not_at_its_end(
    qtbot: QtBot,
) -> None:
    output = view(qtbot)
    output.set_text("")
    text = "Some **bold** words and more. " * (outputview.FINISH_RENDER_MAX // 20)
    output.append_text(text)
    output.flush()
    revision = output.document().revision()
    output.finish()
    assert output.document().revision() == revision
    output.set_text(output.text())  # the job selected again: a full render
    assert "**" not in output.toPlainText()
