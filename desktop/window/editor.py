"""The new-job editor: prompt, model, sampling parameters and priority; Ctrl+Enter queues."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import set_icon
from desktop.common.sampling import SamplingFields
from desktop.window.modelpicker import ModelPicker
from worker.jobs.spec import JobSpec, Priority
from worker.jobs.validation import describe_validation_error
from worker.settings import Settings

MAX_SEED = 2**31 - 1


def parse_stop(text: str) -> list[str]:
    """Comma-separated stop strings; '\\,' is a comma, '\\n' a newline, '\\t' a tab."""
    items: list[str] = []
    current: list[str] = []
    escapes = {"n": "\n", "t": "\t", ",": ",", "\\": "\\"}
    chars = iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "\\")
            current.append(escapes.get(nxt, "\\" + nxt))
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip(" ") for item in items if item.strip(" ")]


def format_stop(stop: list[str]) -> str:
    def escape(item: str) -> str:
        return item.replace("\\", "\\\\").replace(",", "\\,").replace("\n", "\\n")

    return ", ".join(escape(s).replace("\t", "\\t") for s in stop)


class EditorPanel(QWidget):
    """Builds a JobSpec from what is typed; the controller submits it."""

    submit_requested = Signal(object)  # JobSpec

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker = ModelPicker()
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText(
            "Write a prompt… Ctrl+Enter queues it. Or drop prompt files and folders anywhere."
        )
        self.prompt.setTabChangesFocus(True)
        self.sampling = SamplingFields(compact=True)
        self.seed = QSpinBox()
        self.seed.setRange(-1, MAX_SEED)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.seed.setToolTip("Fixed seed for repeatable output (random: a new one per job)")
        self.stop = QLineEdit()
        self.stop.setPlaceholderText("none")
        self.stop.setToolTip(
            "Stop strings, separated by commas. Write \\, for a comma and \\n for a line break."
        )
        self.priority = QComboBox()
        for value in Priority:
            self.priority.addItem(value.value.capitalize(), value.value)
        self.priority.setCurrentIndex(list(Priority).index(Priority.normal))
        self.priority.setToolTip("High runs before normal, normal before low")
        self.queue_button = QPushButton("Queue")
        set_icon(self.queue_button, "send")
        self.queue_button.setToolTip("Queue this prompt (Ctrl+Enter)")
        self.queue_button.setDefault(True)
        self.queue_button.clicked.connect(self.submit)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("QLabel { color: #dc2626; }")
        self.message.hide()
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self.submit)
        self._layout()
        self.apply_defaults(settings)

    def _layout(self) -> None:
        bottom = QHBoxLayout()
        for name, widget in (("Stop", self.stop), ("Seed", self.seed), ("Priority", self.priority)):
            label = QLabel(name)
            label.setToolTip(widget.toolTip())
            label.setBuddy(widget)
            bottom.addWidget(label)
            bottom.addWidget(widget, 1 if widget is self.stop else 0)
            bottom.addSpacing(6)
        bottom.addSpacing(6)
        bottom.addWidget(self.queue_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 6, 8, 8)
        column.setSpacing(6)
        column.addWidget(self.picker)
        column.addWidget(self.prompt, 1)
        column.addWidget(self.sampling)
        column.addLayout(bottom)
        column.addWidget(self.message)

    def apply_defaults(self, settings: Settings) -> None:
        """Start new jobs from the settings' defaults (the same as the command line's)."""
        self.sampling.set_values(settings.job_defaults())

    def defaults(self) -> dict[str, Any]:
        """The JobSpec fields (without the prompt) that new jobs get, dropped files included."""
        values: dict[str, Any] = {
            **self.sampling.values(),
            "priority": str(self.priority.currentData()),
            "stop": parse_stop(self.stop.text()),
        }
        if self.seed.value() >= 0:
            values["seed"] = self.seed.value()
        model = self.picker.current_model()
        if model:
            values["model"] = model
        return values

    def build_spec(self) -> JobSpec:
        """The job as typed; ValueError with a readable reason when it is not valid."""
        if not self.picker.current_model():
            raise ValueError("choose a model first (Open… next to the model list)")
        if not self.prompt.toPlainText().strip():
            raise ValueError("the prompt is empty")
        try:
            return JobSpec.model_validate({**self.defaults(), "prompt": self.prompt.toPlainText()})
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from exc

    def submit(self) -> None:
        try:
            spec = self.build_spec()
        except ValueError as exc:
            self.show_message(str(exc))
            return
        self.show_message("")
        self.submit_requested.emit(spec)

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def submitted(self) -> None:
        """The job was queued: start the next prompt."""
        self.prompt.clear()
        self.prompt.setFocus()
