"""Help > About: the versions, where data, logs and settings live, and buttons to open them."""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass
from pathlib import Path

import PySide6
from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import app_icon
from worker.paths import AppPaths

UNKNOWN = "unknown"


def package_version(name: str) -> str:
    """An installed distribution's version (read from its metadata, never by importing it)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class AboutInfo:
    versions: tuple[tuple[str, str], ...]
    places: tuple[tuple[str, Path], ...]

    @classmethod
    def gather(cls, paths: AppPaths, server: str | None = None) -> AboutInfo:
        """`server`: the queue server's name and version, when known."""
        versions = (
            ("PromptSpool", package_version("promptspool")),
            ("llama-cpp-python (llama.cpp)", package_version("llama_cpp_python")),
            ("Qt", qVersion()),
            ("PySide6", PySide6.__version__),
            ("Python", platform.python_version()),
            ("Queue server", server or UNKNOWN),
        )
        places = (
            ("Data (the queue, prompts and outputs)", paths.data),
            ("Logs", paths.logs),
            ("Settings", paths.config),
            ("Runtime (sockets)", paths.runtime),
        )
        return cls(versions, places)

    def text(self) -> str:
        """Everything as plain text, for a bug report."""
        lines = [f"{name}: {version}" for name, version in self.versions]
        lines += [f"{name}: {path}" for name, path in self.places]
        lines.append(f"System: {platform.platform()}")
        return "\n".join(lines)


def server_version(info: dict[str, object]) -> str:
    """'Valkey 8.1.1' or 'Redis 7.2.4', from the server's INFO server section."""
    for key, name in (("valkey_version", "Valkey"), ("redis_version", "Redis")):
        if info.get(key):
            return f"{name} {info[key]}"
    return UNKNOWN


class AboutDialog(QDialog):
    """Versions and places, each folder with an Open button; Copy puts it all on the clipboard."""

    def __init__(
        self, paths: AppPaths, server: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("about-dialog")
        self.setWindowTitle("About PromptSpool")
        self.info = AboutInfo.gather(paths, server)
        self.labels: dict[str, QLabel] = {}
        self.open_buttons: dict[str, QPushButton] = {}
        layout = QVBoxLayout(self)
        title = QLabel("<b>PromptSpool</b><br>A desktop spooler for local LLM jobs")
        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(48, 48))
        header = QGridLayout()
        header.addWidget(icon, 0, 0)
        header.addWidget(title, 0, 1, 1, 2)
        header.setColumnStretch(2, 1)
        layout.addLayout(header)
        grid = QGridLayout()
        for row, (name, version) in enumerate(self.info.versions):
            grid.addWidget(QLabel(name), row, 0)
            self.labels[name] = self._selectable(version)
            grid.addWidget(self.labels[name], row, 1, 1, 2)
        start = len(self.info.versions)
        for row, (name, path) in enumerate(self.info.places, start):
            grid.addWidget(QLabel(name), row, 0)
            self.labels[name] = self._selectable(str(path))
            grid.addWidget(self.labels[name], row, 1)
            button = QPushButton("Open")
            button.setToolTip(f"Open {path} in the file manager")
            button.clicked.connect(lambda _=False, p=path: self.open_folder(p))
            grid.addWidget(button, row, 2)
            self.open_buttons[name] = button
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = buttons.addButton("Copy info", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy_info)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _selectable(text: str) -> QLabel:
        label = QLabel(text)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def set_server(self, server: str) -> None:
        """The queue server's version, once asked."""
        self.info = AboutInfo(
            tuple((n, server if n == "Queue server" else v) for n, v in self.info.versions),
            self.info.places,
        )
        self.labels["Queue server"].setText(server)

    def open_folder(self, path: Path) -> bool:
        """Show the folder in the desktop's file manager."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def copy_info(self) -> None:
        QApplication.clipboard().setText(self.info.text())
