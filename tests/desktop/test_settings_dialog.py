"""The settings dialog writes the core's settings file in the (temporary) config dir."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.services.uistate import UiState
from desktop.window.settingsdialog import SettingsDialog
from worker.settings import Settings, load_settings


def test_settings_are_saved_and_reloaded(
    qtbot: QtBot, isolated_home: Path, tiny_model: Path
) -> None:
    settings = load_settings()
    assert settings.paths.config == isolated_home / "config"
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.model.setText(str(tiny_model))
    dialog.gpu_layers.setValue(12)
    dialog.n_ctx.setValue(8192)
    dialog.sampling.set_values({"temperature": 0.3, "top_p": 0.5, "top_k": 7, "max_tokens": 1000})
    dialog.notifications.setChecked(False)
    dialog.keep_in_tray.setChecked(False)
    with qtbot.waitSignal(dialog.saved) as saved:
        dialog.save()
    assert isinstance(saved.args[0], Settings)
    stored = json.loads((isolated_home / "config" / "settings.json").read_text())
    assert stored["n_gpu_layers"] == 12 and stored["notifications"] is False
    reloaded = load_settings()
    assert reloaded.model == tiny_model
    assert (reloaded.n_gpu_layers, reloaded.n_ctx, reloaded.top_k) == (12, 8192, 7)
    assert (reloaded.temperature, reloaded.top_p, reloaded.max_tokens) == (0.3, 0.5, 1000)
    assert not reloaded.notifications and not reloaded.keep_in_tray
    again = SettingsDialog(reloaded)
    qtbot.addWidget(again)
    assert again.values() == dialog.values()


def test_cancel_writes_nothing(qtbot: QtBot, isolated_home: Path) -> None:
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    dialog.gpu_layers.setValue(3)
    dialog.reject()
    assert not (isolated_home / "config" / "settings.json").exists()
    assert load_settings().n_gpu_layers == -1


def test_window_state_is_kept_in_the_config_dir(isolated_home: Path) -> None:
    ui = UiState(isolated_home / "config")
    for n in range(12):
        ui.add_recent_model(f"/models/{n}.gguf")
    ui.add_recent_model("/models/3.gguf")
    ui.set_flag("tray_hint_shown")
    ui.sync()
    again = UiState(isolated_home / "config")
    assert again.recent_models()[:2] == ["/models/3.gguf", "/models/11.gguf"]
    assert len(again.recent_models()) == 10
    assert again.flag("tray_hint_shown") and not again.flag("other")


def test_a_model_that_cannot_work_is_refused_beside_its_field(
    qtbot: QtBot, isolated_home: Path, tiny_model: Path, tmp_path: Path
) -> None:
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    note = dialog.notes["model"]
    missing = tmp_path / "gone.gguf"
    dialog.model.setText(str(missing))
    assert not note.isHidden() and "no such file" in note.text() and str(missing) in note.text()
    assert not dialog.save_button.isEnabled()
    saved: list[object] = []
    dialog.saved.connect(saved.append)
    dialog.save()  # e.g. Enter in a field: refused, the reason stays beside the field
    assert saved == [] and not (isolated_home / "config" / "settings.json").exists()
    text = tmp_path / "notes.gguf"
    text.write_text("not a model", encoding="utf-8")
    dialog.model.setText(str(text))
    assert "not a GGUF file" in note.text() and not dialog.save_button.isEnabled()
    dialog.model.setText(str(tiny_model))
    assert note.isHidden() and dialog.save_button.isEnabled()
    dialog.model.clear()  # no default model is fine
    assert note.isHidden() and dialog.save_button.isEnabled()


def test_a_saved_model_that_went_missing_is_shown_at_once(
    qtbot: QtBot, isolated_home: Path, tmp_path: Path
) -> None:
    settings = load_settings()
    settings.model = tmp_path / "moved.gguf"
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert "no such file" in dialog.notes["model"].text()
    assert not dialog.save_button.isEnabled()


def test_a_context_beyond_the_models_training_is_warned(
    qtbot: QtBot, isolated_home: Path, tiny_model: Path
) -> None:
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    assert dialog.n_ctx.maximum() == 1_048_576  # the settings model's own bound
    dialog.model.setText(str(tiny_model))  # trained on 4,096 tokens
    dialog.n_ctx.setValue(999_999)
    note = dialog.notes["n_ctx"]
    assert not note.isHidden()
    assert "999,999" in note.text() and "4,096" in note.text() and "trained" in note.text()
    dialog.n_ctx.setValue(4096)
    assert note.isHidden()


def test_system_prompt_format_and_sound_are_saved(qtbot: QtBot, isolated_home: Path) -> None:
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    assert dialog.prompt_format.prompt_format() == "auto"
    assert dialog.prompt_format.itemText(0) == "Auto (model's template)"
    assert dialog.prompt_format.findData("chatml") > 0 and dialog.prompt_format.findData("raw") > 0
    dialog.system_prompt.setPlainText("You are terse.\nAnswer in one line.")
    dialog.prompt_format.set_prompt_format("chatml")
    dialog.notify_sound.setChecked(True)
    dialog.notifications.setChecked(False)
    assert not dialog.notify_sound.isEnabled()  # a sound goes with the notifications
    dialog.notifications.setChecked(True)
    with qtbot.waitSignal(dialog.saved):
        dialog.save()
    reloaded = load_settings()
    assert reloaded.system_prompt == "You are terse.\nAnswer in one line."
    assert (reloaded.prompt_format, reloaded.notify_sound) == ("chatml", True)
    defaults = reloaded.job_defaults()
    assert defaults["system"] == reloaded.system_prompt and defaults["prompt_format"] == "chatml"
    again = SettingsDialog(reloaded)
    qtbot.addWidget(again)
    assert again.values() == dialog.values()
