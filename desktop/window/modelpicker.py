"""Choosing the GGUF model: recent files, an open dialog, and what the chosen file is."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import action_icon, set_icon
from desktop.common.promptformat import format_line

GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"


def ask_model_file(parent: QWidget | None, start: str = "") -> str | None:
    """The open dialog for a GGUF file; None when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open a GGUF model", start, GGUF_FILTER)
    return path or None


class ModelPicker(QWidget):
    """A combo of recent models with an Open… button; under it the model's metadata and the
    prompt format its jobs will get."""

    model_changed = Signal(str)  # the chosen path ("" for none)
    browse_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(16)
        self.combo.setPlaceholderText("No model chosen")
        self.combo.setToolTip("Recent GGUF models")
        self.combo.currentIndexChanged.connect(self._on_index)
        self.browse = QToolButton()
        set_icon(self.browse, "open")
        self.browse.setText("Open…")
        self.browse.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.browse.setToolTip("Open a GGUF model file")
        self.browse.clicked.connect(self.browse_requested)
        self.info = QLabel("Choose a GGUF model to run the prompts with.")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.format_line = QLabel()
        self.format_line.setWordWrap(True)
        self.format_line.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.prompt_format: str | None = None
        self.chat_template: bool | None = None  # the current model's, once its metadata is read
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(self.info)
        column.addWidget(self.format_line)
        self._show_format()

    def set_models(self, paths: list[str], current: str | None = None) -> None:
        """Fill the list (most recent first) and choose `current` (default: the first)."""
        self.combo.blockSignals(True)
        self.combo.clear()
        for path in paths:
            self.combo.addItem(action_icon("model"), Path(path).name, path)
            self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self.combo.blockSignals(False)
        target = current if current in paths else paths[0] if paths else None
        self.combo.setCurrentIndex(paths.index(target) if target else -1)
        self.model_changed.emit(self.current_model() or "")

    def models(self) -> list[str]:
        return [str(self.combo.itemData(i)) for i in range(self.combo.count())]

    def current_model(self) -> str | None:
        value = self.combo.currentData()
        return str(value) if value else None

    def choose(self, path: str) -> None:
        """Put `path` first in the list and select it."""
        paths = [path, *(p for p in self.models() if p != path)]
        self.set_models(paths, path)

    def select(self, path: str) -> None:
        """Select `path`, adding it first to the list if it is not there."""
        if path in self.models():
            self.combo.setCurrentIndex(self.models().index(path))
        else:
            self.choose(path)

    def set_info(
        self, path: str, text: str, ok: bool = True, chat_template: bool | None = None
    ) -> None:
        """The metadata line of `path` (ignored unless it is the current model), and whether
        the model has a chat template (None: not known)."""
        if path != (self.current_model() or ""):
            return
        self.info.setText(text)
        self.info.setStyleSheet("" if ok else "QLabel { color: #dc2626; }")
        self.info.setToolTip(path)
        self.chat_template = chat_template
        self._show_format()

    def set_prompt_format(self, fmt: str | None) -> None:
        """The format the next job gets (None or 'auto': the model's template, if any)."""
        self.prompt_format = fmt
        self._show_format()

    def _show_format(self) -> None:
        text = format_line(self.prompt_format, self.chat_template)
        self.format_line.setText(text if self.current_model() else "")
        self.format_line.setVisible(bool(self.current_model()))

    def _on_index(self, _index: int) -> None:
        self.info.setText("Reading the model's metadata…" if self.current_model() else "")
        self.info.setStyleSheet("")
        self.chat_template = None
        self._show_format()
        self.model_changed.emit(self.current_model() or "")
