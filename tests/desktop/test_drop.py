"""Files in and out: drops queue good files and list refused ones; export; clear; output view."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget
from pytest import MonkeyPatch
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.services.drops import NO_MODEL, plan_drop
from desktop.window.dropsummary import headline
from desktop.window.outputview import OutputView
from tests.desktop.support import run_soon
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue

WAIT_MS = 30_000


def prompt_files(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Dropped paths, and the refused ones' names with a word their reason must contain."""
    (root / "folder" / "nested").mkdir(parents=True)
    (root / "story.txt").write_text("Once upon a time", encoding="utf-8")
    (root / "notes.md").write_text("# Summarise\nthe meeting", encoding="utf-8")
    good = [{"prompt": "one", "max_tokens": 4}, {"prompt": "two", "priority": "high"}]
    (root / "batch.jsonl").write_text("\n".join(json.dumps(g) for g in good), encoding="utf-8")
    (root / "folder" / "a.prompt").write_text("from a folder", encoding="utf-8")
    (root / "folder" / "nested" / "b.json").write_text('{"prompt": "deep"}', encoding="utf-8")
    (root / "folder" / "picture.png").write_bytes(b"\x89PNG")  # skipped inside folders
    (root / "broken.json").write_text('{"prompt": "no end"', encoding="utf-8")
    (root / "half.jsonl").write_text('{"prompt": "fine"}\n{"prompt": 3}\n', encoding="utf-8")
    (root / "empty.txt").write_text("  \n", encoding="utf-8")
    (root / "binary.exe").write_bytes(b"MZ\x00\x01")
    names = ["story.txt", "notes.md", "batch.jsonl", "folder", "broken.json", "half.jsonl",
             "empty.txt", "binary.exe"]  # fmt: skip
    refused = {
        "broken.json": "invalid JSON",
        "half.jsonl": "line 2",
        "empty.txt": "empty",
        "binary.exe": "unsupported file type",
    }
    return [root / n for n in names], refused


def drop_on(widget: QWidget, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = QPointF(widget.rect().center())
    event = QDropEvent(
        point,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def test_drop_queues_good_files_and_lists_refused_ones(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    desk.commands.choose_model(str(tiny_model))
    paths, refused = prompt_files(tmp_path)
    target = desk.window.editor.prompt.viewport()  # a text box: the drop must not paste paths
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted() and desk.window.overlay.isVisible()
    with qtbot.waitSignal(desk.commands.drop_finished, timeout=WAIT_MS) as dropped:
        drop_on(target, paths)
    assert not desk.window.overlay.isVisible()
    assert desk.window.editor.prompt.toPlainText() == ""
    outcome = dropped.args[0]
    queued = {path.name: len(ids) for path, ids in outcome.queued}
    assert queued == {"story.txt": 1, "notes.md": 1, "batch.jsonl": 2, "a.prompt": 1, "b.json": 1}
    assert {r.path.name: r.reason for r in outcome.refused}.keys() == refused.keys()
    for refusal in outcome.refused:
        assert refused[refusal.path.name] in refusal.reason
    # The one summary says both, naming each refused file and its reason.
    summary = desk.window.drop_summary
    assert summary is not None and summary.isVisible()
    assert summary.heading.text() == headline(outcome)
    assert summary.heading.text().startswith("Queued 6 jobs from 5 files; refused 4 files")
    listed = dict(summary.rows())
    for name in refused:
        assert any(path.endswith(name) for path in listed)
    # Nothing from a refused file reached the queue.
    jobs = queue.client.list()
    assert sorted(job.title for job in jobs) == sorted(
        ["story.txt", "notes.md", "batch.jsonl#1", "batch.jsonl#2", "a.prompt", "b.json"]
    )
    assert {job.spec.model for job in jobs} == {str(tiny_model.resolve())}
    qtbot.waitUntil(lambda: desk.jobs.rowCount() == 6, timeout=WAIT_MS)


def test_drop_summary_lists_each_bad_line_of_a_jsonl_file(
    qtbot: QtBot, desk: Controller, tiny_model: Path, tmp_path: Path
) -> None:
    desk.commands.choose_model(str(tiny_model))
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a"}\n{"prompt": "b", "temprature": 0.5}\n{"prompt": "c"}\n'
                    '{"prompt": "d", "max_tok', encoding="utf-8")  # fmt: skip
    with qtbot.waitSignal(desk.commands.drop_finished, timeout=WAIT_MS) as dropped:
        desk.window.files_dropped.emit([jobs])
    typo = "line 2: field 'temprature': unknown field; did you mean 'temperature'?"
    truncated = "line 4: invalid JSON at column 17: Unterminated string starting at"
    outcome = dropped.args[0]
    assert outcome.job_ids == []  # whole files only: nothing of it is queued
    assert [(r.path, r.problems) for r in outcome.refused] == [(jobs, (typo, truncated))]
    summary = desk.window.drop_summary
    assert summary is not None and summary.windowTitle() == "Dropped files"
    assert summary.rows() == [(str(jobs), f"{typo} (and 1 more bad line)")]
    assert summary.problems(0) == [typo, truncated]


def test_add_files_summary_says_added(
    qtbot: QtBot, desk: Controller, tiny_model: Path, tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    desk.commands.choose_model(str(tiny_model))
    story = tmp_path / "story.txt"
    story.write_text("Once upon a time", encoding="utf-8")
    chosen = ([str(story)], "")  # what the file chooser answers (it cannot be clicked here)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *_: chosen)
    with qtbot.waitSignal(desk.commands.drop_finished, timeout=WAIT_MS) as added:
        desk.window.actions_by_name["add_files"].trigger()
    assert [path for path, _ in added.args[0].queued] == [story]
    summary = desk.window.drop_summary
    assert summary is not None and summary.windowTitle() == "Added files"


def test_drop_without_a_model_refuses_text_files_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    plan = plan_drop([tmp_path / "a.txt"], {"max_tokens": 8})
    assert plan.specs == []
    assert [r.reason for r in plan.refused] == [NO_MODEL]


def test_drop_refuses_a_file_whose_model_is_missing(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "a.json").write_text('{"prompt": "x", "model": "/nowhere.gguf"}', "utf-8")
    (tmp_path / "b.txt").write_text("fine", encoding="utf-8")
    plan = plan_drop([tmp_path], {"model": str(tiny_model)})
    assert [s.path.name for s in plan.sources] == ["b.txt"]
    assert [r.path.name for r in plan.refused] == ["a.json"]
    assert "no such file" in plan.refused[0].reason


def test_export_and_clear_finished_from_the_window(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    desk: Controller,
    queue: Queue,
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    spec = JobSpec(model=str(tiny_model), prompt="Write about rivers", title="rivers.txt")
    [kept, dropped] = queue.client.submit([spec, spec.model_copy(update={"title": "gone.txt"})])
    queue.client.cancel(dropped)
    qtbot.waitUntil(lambda: desk.jobs.rowCount() == 2, timeout=WAIT_MS)
    for fmt in ("md", "json"):
        target = tmp_path / f"out.{fmt}"
        with qtbot.waitSignal(desk.message, timeout=WAIT_MS):
            run_soon(qloop, desk.commands.export([kept], fmt, target))
        qtbot.waitUntil(target.exists, timeout=WAIT_MS)
        text = target.read_text(encoding="utf-8")
        assert "rivers.txt" in text and "Write about rivers" in text
    assert json.loads((tmp_path / "out.json").read_text())[0]["id"] == kept
    # "Clear finished" asks first, then removes only the finished job.
    clear = desk.window.actions_by_name["clear_finished"]
    qtbot.waitUntil(clear.isEnabled, timeout=WAIT_MS)
    clear.trigger()
    [box] = desk.window.findChildren(QMessageBox)
    with qtbot.waitSignal(desk.commands.action_finished, timeout=WAIT_MS) as cleared:
        button = box.button(QMessageBox.StandardButton.Yes)
        assert button is not None
        button.click()
    assert cleared.args[0].done == [dropped]
    qtbot.waitUntil(lambda: desk.jobs.ids() == [kept], timeout=WAIT_MS)
    assert [job.id for job in queue.client.list()] == [kept]


def test_output_follows_the_end_unless_scrolled_up(qtbot: QtBot) -> None:
    view = OutputView()
    qtbot.addWidget(view)
    view.set_raw(True)  # raw text: each flush inserts the gathered appends
    view.resize(300, 120)
    view.show()
    view.set_text("line\n" * 200)
    bar = view.verticalScrollBar()
    assert bar.value() == bar.maximum() > 0
    view.append_text("more\n" * 10)
    view.append_text("more\n" * 10)
    assert view.text().endswith("more\n" * 20)  # gathered for a moment, then inserted at once
    qtbot.waitUntil(lambda: view.toPlainText() == view.text())
    assert bar.value() == bar.maximum()  # it followed the end
    bar.setValue(10)  # the reader scrolled up
    view.append_text("even more\n" * 20)
    view.flush()
    assert bar.value() == 10 and view.toPlainText().endswith("even more\n")
    bar.setValue(bar.maximum())  # back at the end: following again
    view.append_text("last\n")
    view.flush()
    assert bar.value() == bar.maximum()
