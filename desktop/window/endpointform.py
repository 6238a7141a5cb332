"""The form for one remote endpoint: name, base URL, key, limits; and a test of its models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import set_icon
from desktop.services.offthread import run_off_thread
from worker.endpoints.config import Endpoint
from worker.jobs.validation import error_message, field_bounds
from worker.remote.catalog import RemoteModel, endpoint_models
from worker.settings import Settings

ERROR_STYLE = "QLabel { color: #dc2626; }"
FIELD_LABELS = {
    "name": "Name",
    "base_url": "Base URL",
    "api_key": "API key",
    "api_key_env": "Environment variable",
    "max_concurrency": "Max concurrency",
    "requests_per_minute": "Requests/min",
}
PATTERN_HINTS = {
    "name": "letters, digits, '.', '_' and '-', starting with a letter or digit; at most 64",
    "api_key_env": "letters, digits and '_', not starting with a digit",
}
MODELS_SHOWN = 6


def models_line(models: list[RemoteModel]) -> str:
    """'3 models: a, b, c' (the first few, then how many more)."""
    if not models:
        return "The endpoint answered, but lists no models."
    names = [m.model for m in models[:MODELS_SHOWN]]
    more = len(models) - len(names)
    tail = f", and {more:,} more" if more else ""
    return f"{len(models):,} model{'s' if len(models) != 1 else ''}: {', '.join(names)}{tail}"


@dataclass(frozen=True)
class EndpointEdit:
    """What the form gives back: the endpoint (without its key), a newly typed key ('' for
    none), and whether the key kept until now is to be forgotten."""

    endpoint: Endpoint
    key: str = ""
    forget_key: bool = False


def _note() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(ERROR_STYLE)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


class EndpointForm(QDialog):
    """Adds or edits one endpoint; OK is refused (with the reason beside the field) until the
    values make a valid Endpoint whose name no other endpoint has.

    The key field never shows a key: a kept one reads '••• (kept in …)', and leaving the
    field empty keeps it.
    """

    def __init__(
        self,
        settings: Settings,
        endpoint: Endpoint | None = None,
        *,
        taken: set[str] | frozenset[str] = frozenset(),
        key_kept: bool = False,
        key_where: str = "",
        parent: QWidget | None = None,
    ) -> None:
        """`taken`: the other endpoints' names; `key_kept`: a key is kept for `endpoint`;
        `key_where`: where a typed key is kept (the key store's `where`)."""
        super().__init__(parent)
        self.settings = settings
        self.original = endpoint
        self.taken = set(taken)
        self.key_kept = key_kept
        self.key_where = key_where or "the key store"
        self.forget_key = False
        self._test_run = 0
        self.setWindowTitle("Edit endpoint" if endpoint is not None else "Add an endpoint")
        self.setMinimumWidth(560)
        self.notes = {name: _note() for name in FIELD_LABELS}
        self._build()
        self._load(endpoint)

    # --- building ---------------------------------------------------------------------

    def _build(self) -> None:
        self.name = QLineEdit()
        self.name.setPlaceholderText("lab")
        self.name.setToolTip("Jobs name its models NAME/MODEL, e.g. lab/qwen2.5-7b")
        self.base_url = QLineEdit()
        self.base_url.setPlaceholderText("http://host:8080/v1")
        self.base_url.setToolTip("The OpenAI-compatible API's address, usually ending in /v1")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.forget_button = QToolButton()
        self.forget_button.setText("Forget key")
        self.forget_button.setToolTip("Send no key from now on (the kept one is deleted on save)")
        self.forget_button.clicked.connect(self._forget)
        self.use_env = QCheckBox("Key from environment variable")
        self.key_env = QLineEdit()
        self.key_env.setPlaceholderText("OPENAI_API_KEY")
        self.use_env.toggled.connect(self._env_toggled)
        low, high = field_bounds(Endpoint, "max_concurrency")
        self.max_concurrency = QSpinBox()
        self.max_concurrency.setRange(int(low), int(high))
        self.max_concurrency.setToolTip("Requests in flight at once, across every worker")
        self.rpm = QDoubleSpinBox()
        self.rpm.setRange(0, field_bounds(Endpoint, "requests_per_minute")[1])
        self.rpm.setDecimals(1)
        self.rpm.setSpecialValueText("no limit")
        self.rpm.setSuffix(" /min")
        self.rpm.setToolTip("Start at most this many requests a minute (0: no limit of ours)")
        self.test_button = QPushButton("Test")
        set_icon(self.test_button, "retry")
        self.test_button.setToolTip("List the endpoint's models (GET {base URL}/models)")
        self.test_button.clicked.connect(self.test)
        self.test_result = QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_result.hide()
        self._lay_out()

    def _lay_out(self) -> None:
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.forget_button)
        env_row = QHBoxLayout()
        env_row.addWidget(self.use_env)
        env_row.addWidget(self.key_env, 1)
        form = QFormLayout()
        for label, field, name in (
            ("Name:", self.name, "name"),
            ("Base URL:", self.base_url, "base_url"),
            ("API key:", key_row, "api_key"),
            ("", env_row, "api_key_env"),
            ("Max concurrency:", self.max_concurrency, "max_concurrency"),
            ("Requests/min:", self.rpm, "requests_per_minute"),
        ):
            form.addRow(label, field)
            form.addRow("", self.notes[name])
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def _load(self, endpoint: Endpoint | None) -> None:
        if endpoint is not None:
            self.name.setText(endpoint.name)
            self.base_url.setText(endpoint.base_url)
            self.use_env.setChecked(bool(endpoint.api_key_env))
            self.key_env.setText(endpoint.api_key_env or "")
            self.max_concurrency.setValue(endpoint.max_concurrency)
            self.rpm.setValue(endpoint.requests_per_minute or 0)
        else:
            self.max_concurrency.setValue(Endpoint.model_fields["max_concurrency"].default)
        self._env_toggled(self.use_env.isChecked())

    def _show_key_state(self) -> None:
        kept = self.key_kept and not self.forget_key
        if self.use_env.isChecked():
            self.key.setPlaceholderText("read from the environment variable below")
        elif kept:
            self.key.setPlaceholderText(f"••• (kept in {self.key_where})")
        else:
            self.key.setPlaceholderText(f"none; a key typed here is kept in {self.key_where}")
        self.key.setToolTip(
            f"{self.key.placeholderText()}. Sent as Authorization: Bearer …; never written to "
            "settings.json, never shown again; leave it empty to keep the key kept now"
        )
        self.forget_button.setVisible(self.key_kept)
        self.forget_button.setEnabled(kept and not self.use_env.isChecked())

    def _env_toggled(self, on: bool) -> None:
        self.key_env.setEnabled(on)
        self.key.setEnabled(not on)
        if on:
            self.key.clear()
        self._show_key_state()

    def _forget(self) -> None:
        self.forget_key = True
        self.key.clear()
        self._show_key_state()

    # --- values -----------------------------------------------------------------------

    def fields(self) -> dict[str, Any]:
        """The endpoint's fields as typed (without the key)."""
        rpm = self.rpm.value()
        return {
            "name": self.name.text().strip(),
            "base_url": self.base_url.text().strip(),
            "api_key_env": self.key_env.text().strip() if self.use_env.isChecked() else None,
            "max_concurrency": self.max_concurrency.value(),
            "requests_per_minute": rpm if rpm > 0 else None,
        }

    def check(self) -> Endpoint | None:
        """The endpoint as typed, or None with each reason shown beside its field."""
        for note in self.notes.values():
            note.hide()
        fields = self.fields()
        errors: dict[str, str] = {}
        if self.use_env.isChecked() and not fields["api_key_env"]:
            errors["api_key_env"] = "Environment variable: name the variable that holds the key"
        endpoint: Endpoint | None = None
        try:
            endpoint = Endpoint.model_validate(fields)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]) if error["loc"] else "name"
                errors.setdefault(name, f"{FIELD_LABELS.get(name, name)}: {_reason(name, error)}")
        if fields["name"] in self.taken and "name" not in errors:
            errors["name"] = f"Name: another endpoint is already named {fields['name']!r}"
        for name, text in errors.items():
            note = self.notes.get(name, self.notes["name"])
            note.setText(text)
            note.show()
        return None if errors else endpoint

    def edit(self) -> EndpointEdit | None:
        """The result, once the form's values are valid."""
        endpoint = self.check()
        if endpoint is None:
            return None
        key = "" if self.use_env.isChecked() else self.key.text().strip()
        forget = self.forget_key or self.use_env.isChecked()
        return EndpointEdit(endpoint, key, forget and self.key_kept and not key)

    def accept(self) -> None:
        if self.check() is not None:
            super().accept()

    # --- the test ---------------------------------------------------------------------

    def test(self) -> None:
        """List the endpoint's models off the GUI thread, with the key as the form has it."""
        endpoint = self.check()
        if endpoint is None:
            return
        typed = self.key.text().strip()
        kept_name = self.original.name if self.original is not None else None
        use_kept = self.key_kept and not self.forget_key and not self.use_env.isChecked()
        settings = self.settings
        self._test_run += 1
        run = self._test_run

        def ask() -> list[RemoteModel]:
            key = typed
            if not key and use_kept and kept_name is not None:
                key = settings.keys.get(kept_name) or ""
            probe = endpoint
            if not endpoint.api_key_env:  # "" sends none, whatever the store has
                probe = endpoint.model_copy(update={"api_key": SecretStr(key)})
            return endpoint_models(settings, probe)

        self.test_button.setEnabled(False)
        self._show_test(f"Asking {endpoint.base_url}/models…", ok=True)
        run_off_thread(self, ask, lambda models, error: self._tested(run, models, error))

    def _tested(
        self, run: int, models: list[RemoteModel] | None, error: BaseException | None
    ) -> None:
        if run != self._test_run:
            return
        self.test_button.setEnabled(True)
        if error is not None:
            self._show_test(str(error), ok=False)
        else:
            self._show_test(models_line(models or []), ok=True)

    def _show_test(self, text: str, ok: bool) -> None:
        self.test_result.setText(text)
        self.test_result.setStyleSheet("" if ok else ERROR_STYLE)
        self.test_result.setForegroundRole(QPalette.ColorRole.WindowText)
        self.test_result.show()


def _reason(name: str, error: Any) -> str:
    if error.get("type") == "string_pattern_mismatch" and name in PATTERN_HINTS:
        return PATTERN_HINTS[name]
    return error_message(error, Endpoint)
