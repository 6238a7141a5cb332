"""The welcome screen's models: what the library found on disk, each with Use; else Download."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common.theme import heading_font
from desktop.services.library import LibraryService, best_first
from desktop.window.modelstable import FIT_COLORS
from worker.library.listing import LibraryModel
from worker.modelfile.info import human_bytes, human_count

SHOWN = 5  # models listed at most (the best first); the rest are in the Models view


def facts_line(model: LibraryModel) -> str:
    """'Hugging Face · 7.6B · Q4_K_M · 4.7 GB'."""
    facts = model.facts
    parts = [model.source]
    if facts.parameters:
        parts.append(human_count(facts.parameters))
    if facts.quantization:
        parts.append(facts.quantization)
    parts.append(human_bytes(model.size))
    return " · ".join(parts)


class FoundModels(QWidget):
    """Under the welcome text: the models found on this machine (the best few) with a Use
    button each; when none is found, Download a model…"""

    use_requested = Signal(str)  # a model's path
    download_requested = Signal()
    models_requested = Signal()  # every model: the Models view

    def __init__(self, library: LibraryService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.use_buttons: dict[str, QPushButton] = {}
        self.heading = QLabel()
        self.heading.setFont(heading_font(self.heading.font(), 1.05))
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note = QLabel()
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.rows = QFrame()
        self.rows.setFrameShape(QFrame.Shape.StyledPanel)
        self.grid = QGridLayout(self.rows)
        self.grid.setHorizontalSpacing(14)
        self.grid.setVerticalSpacing(8)
        self.more = QLabel()
        self.more.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.more.linkActivated.connect(lambda _: self.models_requested.emit())
        self.download_button = QPushButton("Download a model…")
        self.download_button.setToolTip("Search the Hugging Face Hub for GGUF models")
        self.download_button.clicked.connect(self.download_requested)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        buttons.addStretch(1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 12, 0, 0)
        column.setSpacing(8)
        column.addWidget(self.heading)
        column.addWidget(self.note)
        column.addWidget(self.rows)
        column.addWidget(self.more)
        column.addLayout(buttons)
        self.setMaximumWidth(560)
        library.scanning.connect(self.update_list)
        library.listed.connect(lambda _: self.update_list())
        library.failed.connect(lambda _: self.update_list())
        self.update_list()

    def update_list(self) -> None:
        library = self.library
        self._clear()
        models = best_first(library.models())
        self.rows.setVisible(bool(models))
        if library.listing is None:
            self.heading.setText("Models on this machine")
            self.note.setText(
                "Looking for GGUF models on this machine…"
                if library.error is None
                else f"The models on this machine could not be listed: {library.error}"
            )
            self.more.hide()
            self.download_button.hide()
            return
        if not models:
            self.heading.setText("No models found on this machine")
            self.note.setText(
                "Not in the models folders of the settings, nor where LM Studio, Ollama, "
                "GPT4All, llama.cpp or Hugging Face keep theirs."
            )
            self.more.hide()
            self.download_button.show()
            return
        self.heading.setText("Found on this machine")
        self.note.setText("Choose one to run your prompts with:")
        for row, model in enumerate(models[:SHOWN]):
            self._add_row(row, model)
        rest = len(models) - SHOWN
        self.more.setText(
            f'<a href="#models">{rest} more in Models…</a>'
            if rest > 0
            else '<a href="#models">Details, or download another…</a>'
        )
        self.more.show()
        self.download_button.hide()

    def _add_row(self, row: int, model: LibraryModel) -> None:
        name = QLabel(f"<b>{html.escape(model.name)}</b><br>{html.escape(facts_line(model))}")
        name.setToolTip(str(model.path))
        fit = QLabel(model.fit)
        color = FIT_COLORS.get(model.fit)
        if color:
            fit.setStyleSheet(f"QLabel {{ color: {color}; }}")
        use = QPushButton("Use")
        use.setToolTip(f"Run new jobs with {model.path}")
        path = str(model.path)
        use.clicked.connect(lambda: self.use_requested.emit(path))
        self.use_buttons[path] = use
        self.grid.addWidget(name, row, 0)
        self.grid.addWidget(fit, row, 1)
        self.grid.addWidget(use, row, 2)
        self.grid.setColumnStretch(0, 1)

    def _clear(self) -> None:
        self.use_buttons.clear()
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
