"""The editor and its model line: the settings' defaults, system prompt, format, export names."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QWidget
from pytestqt.qtbot import QtBot

from desktop.common.filenames import export_file_name, safe_stem
from desktop.controller import Controller
from desktop.services.uistate import UiState, default_export_dir
from desktop.window.settingsdialog import SettingsDialog
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue

WAIT_MS = 60_000


def settings_dialog(desk: Controller) -> SettingsDialog:
    desk.commands.open_settings()
    dialog = desk.commands.settings_dialog
    assert dialog is not None
    return dialog


def save_settings(qtbot: QtBot, dialog: SettingsDialog) -> None:
    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        dialog.save()


def test_the_picker_follows_the_default_model_there_and_back(
    qtbot: QtBot, desk: Controller, tiny_model: Path, chat_model: Path
) -> None:
    picker = desk.window.editor.picker
    for model in (tiny_model, chat_model, tiny_model):
        dialog = settings_dialog(desk)
        dialog.model.setText(str(model))
        save_settings(qtbot, dialog)
        assert picker.current_model() == str(model)


def test_a_model_gone_before_queueing_is_told_not_logged(
    qtbot: QtBot,
    desk: Controller,
    tiny_model: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = tmp_path / "copy.gguf"
    shutil.copy(tiny_model, model)
    desk.commands.choose_model(str(model))
    model.unlink()
    editor = desk.window.editor
    editor.prompt.setPlainText("hello")
    with (
        caplog.at_level(logging.ERROR),
        qtbot.waitSignal(
            desk.message, timeout=WAIT_MS, check_params_cb=lambda text: "no such file" in text
        ) as said,
    ):
        editor.submit()
    assert said.args[0].startswith("Not queued: model")
    assert "no such file" in editor.message.text() and not editor.message.isHidden()
    assert editor.prompt.toPlainText() == "hello"  # kept, to queue once the model is back
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert desk.jobs.rowCount() == 0


def test_system_prompt_and_format_from_the_settings_go_into_the_job(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    editor = desk.window.editor
    assert editor.system.isHidden() and editor.system_toggle.text() == "System prompt (none)"
    dialog = settings_dialog(desk)
    dialog.system_prompt.setPlainText("You are terse.")
    dialog.prompt_format.set_prompt_format("chatml")
    save_settings(qtbot, dialog)
    assert editor.system.toPlainText() == "You are terse."
    assert editor.system_toggle.text() == "System prompt"
    assert editor.prompt_format.prompt_format() == "chatml"
    editor.system_toggle.click()
    assert not editor.system.isHidden()
    desk.commands.choose_model(str(tiny_model))
    editor.prompt.setPlainText("Say hi")
    with qtbot.waitSignal(desk.commands.submitted, timeout=WAIT_MS) as submitted:
        editor.submit()
    [job_id] = submitted.args[0]
    spec = queue.client.get(job_id, with_output=False).spec
    assert (spec.prompt, spec.system, spec.prompt_format) == ("Say hi", "You are terse.", "chatml")
    editor.system.clear()
    editor.prompt_format.set_prompt_format("auto")
    editor.prompt.setPlainText("Plain")
    with qtbot.waitSignal(desk.commands.submitted, timeout=WAIT_MS) as submitted:
        editor.submit()
    spec = queue.client.get(submitted.args[0][0], with_output=False).spec
    assert (spec.system, spec.prompt_format) == (None, None)


def test_the_model_line_says_which_prompt_format_is_used(
    qtbot: QtBot, desk: Controller, tiny_model: Path, chat_model: Path
) -> None:
    editor = desk.window.editor
    line = editor.picker.format_line
    desk.commands.choose_model(str(chat_model))
    qtbot.waitUntil(lambda: line.text() == "Prompt format: the model's chat template")
    desk.commands.choose_model(str(tiny_model))
    qtbot.waitUntil(lambda: "no chat template" in line.text())
    assert line.text().startswith("Prompt format: raw text")
    editor.prompt_format.set_prompt_format("chatml")
    assert line.text() == "Prompt format: llama.cpp's built-in 'chatml' template"
    editor.prompt_format.set_prompt_format("raw")
    assert line.text() == "Prompt format: raw text, as written"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("What/is: the *answer*?", "What is the answer"),
        ("  ...hidden  ", "hidden"),
        ('a\\b|c<d>e"f\tg', "a b c d e f g"),
        ("???", "promptspool-job"),
        ("CON", "promptspool-job"),
        ("x" * 200, "x" * 80),
    ],
)
def test_job_titles_become_safe_file_names(title: str, expected: str) -> None:
    assert safe_stem(title, "promptspool-job") == expected


def test_export_names_the_file_after_the_job_in_the_last_folder(
    qtbot: QtBot,
    desk: Controller,
    queue: Queue,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [job_id] = queue.client.submit(
        [JobSpec(model=str(tiny_model), prompt="x", title="What/is: the *answer*?")]
    )
    qtbot.waitUntil(lambda: desk.jobs.job(job_id) is not None, timeout=WAIT_MS)
    offered: list[str] = []
    chosen = tmp_path / "exports" / "mine.md"
    chosen.parent.mkdir()

    def save_name(parent: QWidget, caption: str, start: str, filters: str) -> tuple[str, str]:
        offered.append(start)
        return str(chosen), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_name))
    window = desk.window
    assert window.ask_export_path([job_id], "md") == chosen
    assert Path(offered[0]) == default_export_dir() / "What is the answer.md"
    assert window.ask_export_path([job_id], "json") == chosen
    assert Path(offered[1]) == chosen.parent / "What is the answer.json"  # the last folder
    window.ask_export_path([job_id, job_id], "md")
    assert Path(offered[2]) == chosen.parent / "promptspool-2-jobs.md"
    desk.ui.sync()
    assert UiState(desk.settings.paths.config).export_dir() == chosen.parent  # kept for next run
    assert export_file_name(None, 1, "md") == "promptspool-job.md"
