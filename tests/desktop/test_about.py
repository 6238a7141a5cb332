"""Help > About: versions, where the files live, buttons to open them, and a copy for reports."""

from __future__ import annotations

import importlib.metadata
import platform

import pytest
from PySide6.QtCore import QUrl, qVersion
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMenu
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.window.about import UNKNOWN, AboutDialog, server_version

WAIT_MS = 30_000


def test_about_opens_from_the_help_menu_with_versions_and_places(
    qtbot: QtBot, desk: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    [help_menu] = [a.menu() for a in desk.window.menuBar().actions() if a.text() == "&Help"]
    assert isinstance(help_menu, QMenu)
    [about] = [a for a in help_menu.actions() if a.text() == "&About PromptSpool"]
    about.trigger()
    dialog = desk.commands.about_dialog
    assert isinstance(dialog, AboutDialog)
    qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
    labels = {name: label.text() for name, label in dialog.labels.items()}
    assert labels["PromptSpool"] == importlib.metadata.version("promptspool")
    assert labels["llama-cpp-python (llama.cpp)"] == importlib.metadata.version("llama_cpp_python")
    assert labels["Qt"] == qVersion()
    assert labels["Python"] == platform.python_version()
    paths = desk.settings.paths
    assert labels["Data (the queue, prompts and outputs)"] == str(paths.data)
    assert labels["Logs"] == str(paths.logs)
    assert labels["Settings"] == str(paths.config)
    # The queue server's version is asked of the running server.
    server = dialog.labels["Queue server"]
    qtbot.waitUntil(lambda: server.text() != UNKNOWN, timeout=WAIT_MS)
    assert server.text().split()[0] in ("Valkey", "Redis")
    # Open shows the folder in the file manager; Copy puts everything on the clipboard.
    opened: list[QUrl] = []

    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    dialog.open_buttons["Logs"].click()
    assert [url.toLocalFile() for url in opened] == [str(paths.logs)]
    dialog.copy_button.click()
    copied = QApplication.clipboard().text()
    assert f"Logs: {paths.logs}" in copied and f"Settings: {paths.config}" in copied
    assert f"Python: {platform.python_version()}" in copied and server.text() in copied
    dialog.reject()
    qtbot.waitUntil(lambda: desk.commands.about_dialog is None, timeout=WAIT_MS)


def test_the_server_is_named_from_its_info() -> None:
    assert server_version({"redis_version": "7.2.4", "valkey_version": "8.1.1"}) == "Valkey 8.1.1"
    assert server_version({"redis_version": "7.2.4"}) == "Redis 7.2.4"
    assert server_version({}) == UNKNOWN
