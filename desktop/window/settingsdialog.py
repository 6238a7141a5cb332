"""The settings dialog: job defaults, the worker's GPU and context, remote endpoints, the HTTP
API, the desktop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import set_icon
from desktop.common.promptformat import PromptFormatBox
from desktop.common.sampling import SamplingFields
from desktop.services.httpapi import ApiState, ApiStatus
from desktop.services.settingschecks import SettingsChecks
from desktop.window.endpointlist import EndpointList
from desktop.window.modelpicker import ask_model_file
from worker.api.token import TokenFile
from worker.jobs.validation import describe_validation_error, field_bounds
from worker.settings import DEFAULT_HTTP_PORT, Settings

WORKER_FIELDS = ("model", "n_gpu_layers", "n_ctx")
ERROR_STYLE = "QLabel { color: #dc2626; }"
WARNING_STYLE = "QLabel { color: #b45309; }"


def _setting_box(name: str, step: int = 1) -> QSpinBox:
    """A spin box for the integer setting `name`, with the settings model's bounds."""
    low, high = field_bounds(Settings, name)
    box = QSpinBox()
    box.setRange(int(low), int(high))
    box.setSingleStep(step)
    box.setGroupSeparatorShown(True)
    return box


def _note() -> QLabel:
    """A message beside a field: why its value cannot be used, or a warning about it."""
    label = QLabel()
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def _folder_row(path: Path) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(str(path))
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setToolTip(str(path))
    button = QToolButton()
    set_icon(button, "folder")
    button.setText("Open")
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setToolTip(f"Open {path} in the file manager")

    def open_folder() -> None:
        path.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    button.clicked.connect(open_folder)
    layout.addWidget(label, 1)
    layout.addWidget(button)
    return row


class SettingsDialog(QDialog):
    """Edits a copy of the settings; Save validates, writes the settings file and emits it.

    Each value is checked as it is typed: the reason a value cannot be used shows beside its
    field, and Save stays off until every value can be used.
    """

    saved = Signal(object)  # Settings
    restart_worker_requested = Signal()

    def __init__(
        self,
        settings: Settings,
        can_restart_worker: bool = False,
        parent: QWidget | None = None,
        *,
        api_status: ApiStatus | None = None,
        api_port: int = DEFAULT_HTTP_PORT,
    ) -> None:
        """`api_status`: the HTTP API as the app runs it (None: the app runs none);
        `api_port`: the port offered while the API is off (the one it last had)."""
        super().__init__(parent)
        self.settings = settings
        self.api_status = api_status
        self.off_port = api_port
        self.setWindowTitle("PromptSpool settings")
        self.setMinimumWidth(560)
        self.checks = SettingsChecks(settings)
        self.notes: dict[str, QLabel] = {}
        self._build_fields()
        boxes = self._build_groups(can_restart_worker)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        content = QWidget()
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        for box in boxes:
            inner.addWidget(box)
        inner.addStretch(1)
        self.groups = QScrollArea()  # scrolls only on a screen too short for them all
        self.groups.setWidget(content)
        self.groups.setWidgetResizable(True)
        self.groups.setFrameShape(QFrame.Shape.NoFrame)
        self.groups.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.groups, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.load(settings)
        self._watch()
        self.check()
        margins = layout.contentsMargins()
        below = (
            layout.spacing() * 2 + buttons.sizeHint().height() + margins.top() + margins.bottom()
        )
        self._fit_screen(content, below)

    def _fit_screen(self, content: QWidget, below: int) -> None:
        """As tall as every group needs, or as the screen allows (the groups then scroll)."""
        wanted = content.sizeHint().height() + below
        screen = self.screen().availableGeometry().height() if self.screen() else wanted
        self.resize(max(self.minimumWidth(), content.sizeHint().width()), min(wanted, screen - 60))

    def _build_fields(self) -> None:
        self.model = QLineEdit()
        self.model.setPlaceholderText("none: choose one in the editor")
        self.model.setClearButtonEnabled(True)
        browse = QToolButton()
        set_icon(browse, "open")
        browse.setToolTip("Choose a GGUF file")
        browse.clicked.connect(self._browse)
        self.model_row = model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        self.gpu_layers = _setting_box("n_gpu_layers")
        self.gpu_layers.setSpecialValueText("all")
        self.gpu_layers.setToolTip("Layers offloaded to the GPU: all, none (0), or a number")
        self.n_ctx = _setting_box("n_ctx", 1024)
        self.n_ctx.setSuffix(" tokens")
        self.sampling = SamplingFields(compact=False)
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText("None")
        self.system_prompt.setToolTip("The instructions the model reads before each prompt")
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setFixedHeight(self.system_prompt.fontMetrics().lineSpacing() * 5)
        self.prompt_format = PromptFormatBox()
        for name in ("model", "n_ctx", "system_prompt", "prompt_format"):
            self.notes[name] = _note()
        self.api_on = QCheckBox("Serve the HTTP API (OpenAI-compatible) on port")
        self.api_port = QSpinBox()
        self.api_port.setRange(1, 65_535)
        self.api_port.setToolTip(f"The TCP port it listens on (default {DEFAULT_HTTP_PORT})")
        self.api_on.toggled.connect(self.api_port.setEnabled)
        self.api_where = QLabel()
        self.api_where.setWordWrap(True)
        self.api_where.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.api_where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_token = QPushButton("Copy token")
        set_icon(self.copy_token, "copy")
        self.copy_token.setToolTip(
            "Copy the bearer token programs send (Authorization: Bearer …) to the clipboard"
        )
        self.copy_token.clicked.connect(self._copy_token)
        self.notifications = QCheckBox("Notify when jobs finish or fail")
        self.notify_sound = QCheckBox("Play a sound with notifications")
        self.notifications.toggled.connect(self.notify_sound.setEnabled)
        self.keep_in_tray = QCheckBox("Keep the queue running in the tray when the window closes")
        self._build_remote_fields()

    def _build_remote_fields(self) -> None:
        self.api_rate = QDoubleSpinBox()
        self.api_rate.setRange(0, field_bounds(Settings, "http_rate_limit_rpm")[1])
        self.api_rate.setDecimals(1)
        self.api_rate.setGroupSeparatorShown(True)
        self.api_rate.setSpecialValueText("no limit")
        self.api_rate.setSuffix(" requests/min per token")
        self.api_rate.setToolTip(
            "Requests a minute each API token may make; more are answered 429 with Retry-After"
        )
        self.endpoint_list = EndpointList(self.settings)
        self.remote_tries = _setting_box("remote_max_tries")
        self.remote_tries.setToolTip(
            "Tries of a remote job that a rate limit (429), an overloaded endpoint (5xx) or a "
            "lost connection interrupts, before it fails"
        )
        self.notes["endpoints"] = _note()

    def _build_groups(self, can_restart_worker: bool) -> list[QGroupBox]:
        engine = QFormLayout()
        engine.addRow("Default model:", self.model_row)
        engine.addRow("", self.notes["model"])
        engine.addRow("GPU layers:", self.gpu_layers)
        engine.addRow("Context size:", self.n_ctx)
        engine.addRow("", self.notes["n_ctx"])
        note = QLabel("The worker uses these from its next start.")
        note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.restart_button = QPushButton("Restart the worker now")
        set_icon(self.restart_button, "restart")
        self.restart_button.setVisible(can_restart_worker)
        self.restart_button.setToolTip("A running job goes back to the queue and runs again")
        self.restart_button.clicked.connect(self.restart_worker_requested)
        restart_row = QHBoxLayout()
        restart_row.addWidget(note, 1)
        restart_row.addWidget(self.restart_button)
        engine.addRow(restart_row)
        sampling = QVBoxLayout()
        prompting = QFormLayout()
        prompting.addRow("System prompt:", self.system_prompt)
        prompting.addRow("", self.notes["system_prompt"])
        prompting.addRow("Prompt format:", self.prompt_format)
        prompting.addRow("", self.notes["prompt_format"])
        sampling.addLayout(prompting)
        sampling.addWidget(self.sampling)
        desktop = QVBoxLayout()
        desktop.addWidget(self.notifications)
        desktop.addWidget(self.notify_sound)
        desktop.addWidget(self.keep_in_tray)
        paths = self.settings.paths
        folders = QFormLayout()
        folders.addRow("Data:", _folder_row(paths.data))
        folders.addRow("Logs:", _folder_row(paths.logs))
        folders.addRow("Settings:", _folder_row(paths.config))

        boxes = []
        for title, inner in (
            ("Model and GPU", engine),
            ("Defaults for new jobs", sampling),
            ("Remote endpoints", self._remote_layout()),
            ("HTTP API", self._api_layout()),
            ("Desktop", desktop),
            ("Folders", folders),
        ):
            box = QGroupBox(title)
            box.setLayout(inner)
            boxes.append(box)
        return boxes

    def _api_layout(self) -> QVBoxLayout:
        api = QVBoxLayout()
        port_row = QHBoxLayout()
        port_row.addWidget(self.api_on)
        port_row.addWidget(self.api_port)
        port_row.addStretch(1)
        port_row.addWidget(self.copy_token)
        api.addLayout(port_row)
        api.addWidget(self.api_where)
        self.api_where.setText(self._api_text())
        rate_row = QHBoxLayout()
        rate_label = QLabel("Rate limit:")
        rate_label.setBuddy(self.api_rate)
        rate_row.addWidget(rate_label)
        rate_row.addWidget(self.api_rate)
        rate_row.addStretch(1)
        api.addLayout(rate_row)
        return api

    def _remote_layout(self) -> QVBoxLayout:
        remote = QVBoxLayout()
        remote_note = QLabel(
            "A job whose model is NAME/MODEL runs MODEL on the endpoint NAME (an "
            "OpenAI-compatible API)."
        )
        remote_note.setWordWrap(True)
        remote_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        remote.addWidget(remote_note)
        remote.addWidget(self.endpoint_list)
        remote.addWidget(self.notes["endpoints"])
        tries = QFormLayout()
        tries.addRow("Tries of a remote job:", self.remote_tries)
        remote.addLayout(tries)
        return remote

    def load(self, settings: Settings) -> None:
        self.model.setText(str(settings.model) if settings.model else "")
        self.gpu_layers.setValue(settings.n_gpu_layers)
        self.n_ctx.setValue(settings.n_ctx)
        self.sampling.set_values(settings.job_defaults())
        self.system_prompt.setPlainText(settings.system_prompt)
        self.prompt_format.set_prompt_format(settings.prompt_format)
        self.api_on.setChecked(settings.http_port != 0)
        self.api_port.setValue(settings.http_port or self.off_port)
        self.api_port.setEnabled(settings.http_port != 0)
        self.notifications.setChecked(settings.notifications)
        self.notify_sound.setChecked(settings.notify_sound)
        self.notify_sound.setEnabled(settings.notifications)
        self.keep_in_tray.setChecked(settings.keep_in_tray)
        self.api_rate.setValue(settings.http_rate_limit_rpm or 0)
        self.remote_tries.setValue(settings.remote_max_tries)

    def values(self) -> dict[str, Any]:
        model = self.model.text().strip()
        return {
            "model": Path(model).expanduser() if model else None,
            "n_gpu_layers": self.gpu_layers.value(),
            "n_ctx": self.n_ctx.value(),
            **self.sampling.values(),
            "system_prompt": self.system_prompt.toPlainText(),
            "prompt_format": self.prompt_format.prompt_format(),
            "http_port": self.api_port.value() if self.api_on.isChecked() else 0,
            "notifications": self.notifications.isChecked(),
            "notify_sound": self.notify_sound.isChecked(),
            "keep_in_tray": self.keep_in_tray.isChecked(),
            "http_rate_limit_rpm": self.api_rate.value() or None,
            "endpoints": self.endpoint_list.endpoints(),
            "remote_max_tries": self.remote_tries.value(),
        }

    def updated(self) -> Settings:
        """A validated copy of the settings with the dialog's values."""
        updated = self.settings.model_copy(deep=True)
        for name, value in self.values().items():
            setattr(updated, name, value)  # validate_assignment checks each value
        return updated

    def _watch(self) -> None:
        """Check the values again whenever one changes."""
        self.model.textChanged.connect(self.check)
        self.n_ctx.valueChanged.connect(self.check)
        self.gpu_layers.valueChanged.connect(self.check)
        self.system_prompt.textChanged.connect(self.check)
        self.prompt_format.currentIndexChanged.connect(self.check)
        for box in self.sampling.boxes.values():
            box.valueChanged.connect(self.check)
        self.endpoint_list.changed.connect(self.check)

    def check(self) -> bool:
        """Show why values cannot be used (and warnings) beside their fields; Save is on only
        when every value can be used. True when they can."""
        found = self.checks.check(self.values())
        for name, note in self.notes.items():
            text = found.errors.get(name) or found.warnings.get(name) or ""
            note.setText(text)
            note.setStyleSheet(ERROR_STYLE if name in found.errors else WARNING_STYLE)
            note.setVisible(bool(text))
        others = [text for name, text in found.errors.items() if name not in self.notes]
        self.error.setText("\n".join(others))
        self.error.setVisible(bool(others))
        self.save_button.setEnabled(not found.errors)
        self.save_button.setToolTip(
            "" if not found.errors else "Fix the values marked in red first"
        )
        return not found.errors

    def save(self) -> None:
        if not self.check():
            return
        try:
            updated = self.updated()
            keys = updated.keys
            updated.endpoints = self.endpoint_list.endpoints_to_save(keys)
            updated.save()  # stores the keys typed; writes none to the settings file
            self.endpoint_list.drop_stale_keys(keys, updated.endpoints)
            updated.endpoints = [e.without_key() for e in updated.endpoints]
        except ValidationError as exc:
            self._fail(describe_validation_error(exc))
            return
        except OSError as exc:
            self._fail(f"cannot write the settings file: {exc}")
            return
        self.settings = updated
        self.saved.emit(updated)
        self.accept()

    def _api_text(self) -> str:
        status = self.api_status
        text = status.summary() if status is not None else "This window runs no HTTP API."
        running = (ApiState.ready, ApiState.starting, ApiState.down)
        if status is not None and status.owned and status.state in running:
            text += " A change starts it again."
        return text

    def _copy_token(self) -> None:
        try:
            token = TokenFile(self.settings.paths.config).read()
        except OSError as exc:
            self._fail(f"cannot read the API token: {exc}")
            return
        clipboard = QGuiApplication.clipboard()
        clipboard.setText(token)
        self.copy_token.setText("Copied")
        QTimer.singleShot(1500, self, lambda: self.copy_token.setText("Copy token"))

    def _fail(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def _browse(self) -> None:
        path = ask_model_file(self, self.model.text())
        if path:
            self.model.setText(path)
