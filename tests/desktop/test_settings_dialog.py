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
