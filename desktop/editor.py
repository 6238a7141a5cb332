"""The new-job editor: prompt, model, sampling parameters and priority; Ctrl+Enter queues."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.icons import set_icon
from desktop.modelpicker import ModelPicker
from worker.promptfiles import describe_validation_error
from worker.settings import Settings
from worker.spec import JobSpec, Priority

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


def _spin(low: float, high: float, step: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setAccelerated(True)
    return box


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
        self.temperature = _spin(0.0, 5.0, 0.05, 2)
        self.top_p = _spin(0.0, 1.0, 0.01, 2)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 100_000)
        self.top_k.setSpecialValueText("off")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 1_000_000)
        self.max_tokens.setSingleStep(64)
        self.max_tokens.setGroupSeparatorShown(True)
        self.seed = QSpinBox()
        self.seed.setRange(-1, MAX_SEED)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.stop = QLineEdit()
        self.stop.setPlaceholderText("none")
        self.stop.setToolTip(
            "Stop strings, separated by commas. Write \\, for a comma and \\n for a line break."
        )
        self.priority = QComboBox()
        for value in Priority:
            self.priority.addItem(value.value.capitalize(), value.value)
        self.priority.setCurrentIndex(list(Priority).index(Priority.normal))
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
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        fields: list[tuple[str, QWidget, str]] = [
            ("Temp", self.temperature, "Temperature: higher is more varied, 0 is greedy"),
            ("Top-p", self.top_p, "Nucleus sampling"),
            ("Top-k", self.top_k, "Sample among the k likeliest tokens (0: off)"),
            ("Max tokens", self.max_tokens, "Stop after this many generated tokens"),
            ("Seed", self.seed, "Fixed seed for repeatable output (random: a new one per job)"),
            ("Priority", self.priority, "High runs before normal, normal before low"),
        ]
        for n, (name, widget, tip) in enumerate(fields):
            label = QLabel(name)
            label.setToolTip(tip)
            widget.setToolTip(tip)
            label.setBuddy(widget)
            grid.addWidget(label, 0, n)
            grid.addWidget(widget, 1, n)
        stop_label = QLabel("Stop")
        stop_label.setBuddy(self.stop)
        bottom = QHBoxLayout()
        bottom.addWidget(stop_label)
        bottom.addWidget(self.stop, 1)
        bottom.addSpacing(12)
        bottom.addWidget(self.queue_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 6, 8, 8)
        column.setSpacing(6)
        column.addWidget(self.picker)
        column.addWidget(self.prompt, 1)
        column.addLayout(grid)
        column.addLayout(bottom)
        column.addWidget(self.message)

    def apply_defaults(self, settings: Settings) -> None:
        self.temperature.setValue(settings.temperature)
        self.top_p.setValue(settings.top_p)
        self.top_k.setValue(settings.top_k)
        self.max_tokens.setValue(settings.max_tokens)

    def defaults(self) -> dict[str, Any]:
        """The JobSpec fields (without the prompt) that new jobs get, dropped files included."""
        values: dict[str, Any] = {
            "temperature": round(self.temperature.value(), 4),
            "top_p": round(self.top_p.value(), 4),
            "top_k": self.top_k.value(),
            "max_tokens": self.max_tokens.value(),
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
