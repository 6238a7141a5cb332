"""The new-job editor: prompt, system prompt, format, model, sampling, priority; follow-ups."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import set_icon
from desktop.common.promptformat import PromptFormatBox
from desktop.common.sampling import SamplingFields
from desktop.common.widgets import ElidedLabel
from desktop.window.modelpicker import ModelPicker
from worker.jobs.followup import conversation, system_of
from worker.jobs.job import Job
from worker.jobs.promptformat import AUTO
from worker.jobs.spec import SAMPLING_FIELDS, JobSpec, Priority
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
    """Builds a JobSpec from what is typed; the controller submits it.

    In follow-up mode the prompt is a new user turn after a finished job's answer: the job
    it makes carries that conversation as its messages, with the parent's id.
    """

    submit_requested = Signal(object)  # JobSpec
    follow_up_changed = Signal(str)  # the job followed up ('' when none)

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.following: Job | None = None
        self._before: dict[str, Any] | None = None  # the editor's state before a follow-up
        self.picker = ModelPicker()
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText(
            "Write a prompt… Ctrl+Enter queues it. Or drop prompt files and folders anywhere."
        )
        self.prompt.setTabChangesFocus(True)
        self._build_system()
        self._build_follow_bar()
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

    def _build_system(self) -> None:
        self.system_toggle = QToolButton()
        self.system_toggle.setCheckable(True)
        self.system_toggle.setAutoRaise(True)
        self.system_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.system_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.system_toggle.setToolTip("The instructions the model reads before the prompt")
        self.system_toggle.toggled.connect(self._show_system)
        self.system = QPlainTextEdit()
        self.system.setPlaceholderText("None. The default is set in Settings.")
        self.system.setTabChangesFocus(True)
        self.system.setMaximumHeight(90)
        self.system.hide()
        self.system.textChanged.connect(self._label_system)
        self.prompt_format = PromptFormatBox()
        self.prompt_format.currentIndexChanged.connect(
            lambda _: self.picker.set_prompt_format(self.prompt_format.prompt_format())
        )
        self._label_system()

    def _build_follow_bar(self) -> None:
        self.follow_bar = QWidget()
        self.follow_label = ElidedLabel()
        self.follow_label.setForegroundRole(QPalette.ColorRole.Link)
        self.leave_button = QToolButton()
        set_icon(self.leave_button, "cancel")
        self.leave_button.setText("New conversation")
        self.leave_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.leave_button.setAutoRaise(True)
        self.leave_button.setToolTip("Stop following up: the next prompt starts a new job")
        self.leave_button.clicked.connect(self.leave_follow_up)
        row = QHBoxLayout(self.follow_bar)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.follow_label, 1)
        row.addWidget(self.leave_button)
        self.follow_bar.hide()

    def _layout(self) -> None:
        options = QHBoxLayout()
        options.addWidget(self.system_toggle)
        options.addStretch(1)
        label = QLabel("Format")
        label.setToolTip(self.prompt_format.toolTip())
        label.setBuddy(self.prompt_format)
        options.addWidget(label)
        options.addWidget(self.prompt_format)
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
        column.addLayout(options)
        column.addWidget(self.system)
        column.addWidget(self.follow_bar)
        column.addWidget(self.prompt, 1)
        column.addWidget(self.sampling)
        column.addLayout(bottom)
        column.addWidget(self.message)

    def _show_system(self, shown: bool) -> None:
        self.system.setVisible(shown)
        arrow = Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        self.system_toggle.setArrowType(arrow)
        if shown:
            self.system.setFocus()

    def _label_system(self) -> None:
        text = self.system.toPlainText().strip()
        self.system_toggle.setText("System prompt" + ("" if text else " (none)"))

    # --- values -----------------------------------------------------------------------

    def apply_defaults(self, settings: Settings) -> None:
        """Start new jobs from the settings' defaults (the same as the command line's); while
        following up, they apply once that ends. The model list offers the settings'
        endpoints' models too."""
        defaults = {
            **{name: getattr(settings, name) for name in SAMPLING_FIELDS},
            "system": settings.system_prompt,
            "prompt_format": settings.prompt_format,
        }
        self.picker.set_settings(settings)
        if self._before is not None:
            self._before.update(defaults)
        else:
            self._set_state(defaults)

    def _state(self) -> dict[str, Any]:
        """What a follow-up changes, to put back when it ends."""
        return {
            **self.sampling.values(),
            "system": self.system.toPlainText(),
            "prompt_format": self.prompt_format.prompt_format(),
            "seed": self.seed.value(),
            "stop": self.stop.text(),
            "priority": self.priority.currentData(),
            "model": self.picker.current_model(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.sampling.set_values(state)
        if "system" in state:
            self.system.setPlainText(state["system"])
        if "prompt_format" in state:
            self.prompt_format.set_prompt_format(state["prompt_format"])
        if "seed" in state:
            self.seed.setValue(state["seed"])
        if "stop" in state:
            self.stop.setText(state["stop"])
        if "priority" in state:
            self.priority.setCurrentIndex(self.priority.findData(state["priority"]))
        if state.get("model"):
            self.picker.select(state["model"])

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
        if self.system.toPlainText().strip():
            values["system"] = self.system.toPlainText()
        if self.prompt_format.prompt_format() != AUTO:
            values["prompt_format"] = self.prompt_format.prompt_format()
        return values

    def build_spec(self) -> JobSpec:
        """The job as typed; ValueError with a readable reason when it is not valid."""
        if not self.picker.current_model():
            raise ValueError("choose a model first (Open… next to the model list)")
        text = self.prompt.toPlainText()
        if not text.strip():
            raise ValueError("the prompt is empty")
        fields = {**self.defaults(), "prompt": text}
        if self.following is not None:
            system = fields.pop("system", "")
            del fields["prompt"]
            fields["messages"] = conversation(self.following, text, system)
            fields["parent"] = self.following.id
        try:
            return JobSpec.model_validate(fields)
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from exc

    # --- follow-ups -------------------------------------------------------------------

    def start_follow_up(self, job: Job) -> None:
        """Continue `job`'s conversation: its model, format, sampling and system prompt, which
        stay changeable; the prompt becomes the next user turn."""
        if self._before is None:
            self._before = self._state()
        self.following = job
        spec = job.spec
        self._set_state(
            {
                **{name: getattr(spec, name) for name in SAMPLING_FIELDS},
                "system": system_of(job),
                "prompt_format": spec.prompt_format or AUTO,
                "seed": -1 if spec.seed is None else spec.seed,
                "stop": format_stop(spec.stop),
                "priority": spec.priority.value,
                "model": spec.model,
            }
        )
        self.follow_label.set_full_text(f"Following up on “{job.title}”")
        self.follow_bar.show()
        self.prompt.setPlaceholderText("Write the next message… Ctrl+Enter queues it.")
        self.queue_button.setToolTip("Queue this follow-up (Ctrl+Enter)")
        self.show_message("")
        self.prompt.setFocus()
        self.follow_up_changed.emit(job.id)

    def leave_follow_up(self) -> None:
        """Back to new jobs, as the editor was before the follow-up."""
        if self.following is None:
            return
        before, self._before = self._before, None
        self.following = None
        if before is not None:
            self._set_state(before)
        self.follow_bar.hide()
        self.prompt.setPlaceholderText(
            "Write a prompt… Ctrl+Enter queues it. Or drop prompt files and folders anywhere."
        )
        self.queue_button.setToolTip("Queue this prompt (Ctrl+Enter)")
        self.follow_up_changed.emit("")

    # --- submitting -------------------------------------------------------------------

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
        """The job was queued: start the next prompt (a follow-up's thread ends here)."""
        self.prompt.clear()
        self.leave_follow_up()
        self.prompt.setFocus()
