"""Choosing the model: recent GGUF files, the library's, an open dialog, the remote endpoints'
models, and what the chosen one is."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette, QShowEvent, QStandardItemModel
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
from desktop.services.library import LibraryService
from desktop.services.offthread import run_off_thread
from worker.endpoints.config import Endpoint
from worker.jobs.target import remote_target
from worker.library.listing import Listing
from worker.remote.catalog import RemoteModel, endpoint_models
from worker.settings import Settings

GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
RETRY_FAILED_S = (
    15.0  # an endpoint that failed is asked again when the list opens, at most this often
)
ON_THIS_MACHINE = "On this machine"


def ask_model_file(parent: QWidget | None, start: str = "") -> str | None:
    """The open dialog for a GGUF file; None when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open a GGUF model", start, GGUF_FILTER)
    return path or None


@dataclass(frozen=True)
class RemoteList:
    """One endpoint's models as last listed: `models` (NAME/MODEL), or why they could not be
    (`failure`); `pending` while they are being asked for (again)."""

    endpoint: str
    models: tuple[str, ...] = ()
    failure: str | None = None
    pending: bool = False
    asked_at: float = 0.0  # time.monotonic() of the last question

    def lines(self) -> tuple[object, ...]:
        """What the list shows of it."""
        return (self.models, self.failure, self.pending and self.failure is None)


def _endpoint_key(endpoint: Endpoint) -> tuple[str, str, str | None]:
    """What an endpoint's model list depends on (its key aside)."""
    return (endpoint.name, endpoint.base_url, endpoint.api_key_env)


class _Combo(QComboBox):
    """A combo that tells when its list is about to open."""

    popup_opening = Signal()

    def showPopup(self) -> None:
        self.popup_opening.emit()
        super().showPopup()


class ModelPicker(QWidget):
    """A combo of recent models, the library's (models on this machine) and the endpoints'
    models, with an Open… button; under it the model's metadata and the prompt format its
    jobs will get.

    The library's models come from the window's LibraryService (listed off the GUI thread
    once a session, again when the Models view refreshes it).

    The endpoints' models are listed off the GUI thread when the picker is first shown (and
    when the endpoints change), kept for the session; an endpoint that could not list them
    shows one disabled line with the reason, and is asked again when the list is opened.
    """

    model_changed = Signal(str)  # the chosen path or NAME/MODEL ("" for none)
    browse_requested = Signal()
    remote_listed = Signal(str)  # an endpoint's models (or its failure) arrived

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings: Settings | None = None
        self._recent: list[str] = []
        self._remote: dict[tuple[str, str, str | None], RemoteList] = {}
        self.library: LibraryService | None = None
        self._local: tuple[tuple[str, str], ...] = ()  # the library's (path, label) shown
        self.combo = _Combo()
        self.combo.popup_opening.connect(self.refresh_failed)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(16)
        self.combo.setPlaceholderText("No model chosen")
        self.combo.setToolTip(
            "Recent GGUF models, those found on this machine, and the remote endpoints' models"
        )
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
        """Fill the recent list (most recent first) and choose `current` (default: the first);
        the endpoints' models follow it."""
        self._recent = list(dict.fromkeys(paths))
        target = current if current in self._recent else self._recent[0] if paths else None
        self._fill(target, notify=False)
        self._on_index(self.combo.currentIndex())

    def models(self) -> list[str]:
        """The recent models (paths, and NAME/MODEL names used before)."""
        return list(self._recent)

    def choices(self) -> list[str]:
        """Every model the list offers: the recent ones, the library's, then the endpoints'."""
        combo = self.combo
        values = (combo.itemData(i) for i in range(combo.count()))
        return [str(value) for value in values if value]

    def current_model(self) -> str | None:
        value = self.combo.currentData()
        return str(value) if value else None

    def choose(self, path: str) -> None:
        """Put `path` first in the recent list and select it."""
        self.set_models([path, *(p for p in self._recent if p != path)], path)

    def select(self, path: str) -> None:
        """Select `path`, adding it first to the recent list if the list does not offer it."""
        at = self.combo.findData(path)
        if at >= 0:
            self.combo.setCurrentIndex(at)
        else:
            self.choose(path)

    # --- the library ------------------------------------------------------------------

    def set_library(self, library: LibraryService) -> None:
        """Offer the library's models (after the recent ones); listed when first shown."""
        self.library = library
        library.listed.connect(self._library_listed)
        if library.listing is not None:
            self._library_listed(library.listing)
        elif self.isVisible():
            library.ensure()

    def library_models(self) -> list[str]:
        """The paths of the library's models the list offers (the recent ones aside)."""
        return [path for path, _ in self._local if path not in self._recent]

    def _library_listed(self, listing: Listing) -> None:
        local = tuple((str(m.path), f"{m.name}  ·  {m.fit}") for m in listing.models)
        if local != self._local:  # an open list is not rebuilt for nothing
            self._local = local
            self._fill(self.current_model())

    # --- remote models ----------------------------------------------------------------

    def is_remote(self, model: str | None) -> bool:
        """Whether `model` is NAME/MODEL of one of the endpoints."""
        settings = self.settings
        return (
            bool(model) and settings is not None and settings.remote_target(model or "") is not None
        )

    def set_settings(self, settings: Settings) -> None:
        """Use these settings' endpoints; a changed endpoint's models are listed again."""
        self.settings = settings
        wanted = {_endpoint_key(e) for e in settings.endpoints}
        for key in [k for k in self._remote if k not in wanted]:
            del self._remote[key]
        self._fill(self.current_model())
        if self.isVisible():
            self.refresh()
        self._show_remote_info()

    def remote_lists(self) -> list[RemoteList]:
        """The endpoints' lists as the picker has them, in the settings' order."""
        if self.settings is None:
            return []
        keys = (_endpoint_key(e) for e in self.settings.endpoints)
        return [self._remote[key] for key in keys if key in self._remote]

    def refresh(self, *, failed_only: bool = False) -> None:
        """List the models of each endpoint not listed yet, off the GUI thread; `failed_only`:
        ask those that failed again instead (at most every RETRY_FAILED_S; the failure shows
        until the new answer)."""
        if self.settings is None:
            return
        clock = time.monotonic()
        for endpoint in self.settings.endpoints:
            known = self._remote.get(_endpoint_key(endpoint))
            if known is None and not failed_only:
                self._ask(self.settings, endpoint, RemoteList(endpoint.name, pending=True))
            elif (
                failed_only
                and known is not None
                and known.failure is not None
                and not known.pending
                and clock - known.asked_at >= RETRY_FAILED_S
            ):
                self._ask(self.settings, endpoint, replace(known, pending=True))
        self._fill(self.current_model())

    def refresh_failed(self) -> None:
        self.refresh(failed_only=True)

    def _ask(self, settings: Settings, endpoint: Endpoint, meanwhile: RemoteList) -> None:
        key = _endpoint_key(endpoint)
        self._remote[key] = replace(meanwhile, asked_at=time.monotonic())

        def done(models: list[RemoteModel] | None, error: BaseException | None) -> None:
            before = self._remote.get(key)
            if before is None:  # the endpoint changed meanwhile
                return
            if error is not None:
                answer = RemoteList(endpoint.name, failure=str(error) or type(error).__name__)
            else:
                answer = RemoteList(endpoint.name, tuple(m.name for m in models or []))
            self._remote[key] = replace(answer, asked_at=before.asked_at)
            if answer.lines() != before.lines():  # an open list is not rebuilt for nothing
                self._fill(self.current_model())
            self.remote_listed.emit(endpoint.name)

        run_off_thread(self, lambda: endpoint_models(settings, endpoint), done)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()
        if self.library is not None:
            self.library.ensure()

    # --- the list ---------------------------------------------------------------------

    def _fill(self, current: str | None, *, notify: bool = True) -> None:
        """Rebuild the list: the recent models, the library's, then each endpoint's; keep
        `current` chosen (`notify`: with a change signal if the choice changes)."""
        combo = self.combo
        before = self.current_model()
        offered = {name for listed in self.remote_lists() for name in listed.models}
        offered.update(path for path, _ in self._local)
        if current and current not in self._recent and current not in offered:
            self._recent.insert(0, current)  # chosen from a list being asked for again
        combo.blockSignals(True)
        combo.clear()
        for value in self._recent:
            remote = remote_target(value) is not None
            label = value if remote else Path(value).name
            combo.addItem(action_icon("send" if remote else "model"), label, value)
            combo.setItemData(combo.count() - 1, value, Qt.ItemDataRole.ToolTipRole)
        local = [(path, label) for path, label in self._local if path not in self._recent]
        if local:
            if combo.count():
                combo.insertSeparator(combo.count())
            self._add_note(ON_THIS_MACHINE)
            for path, label in local:
                combo.addItem(action_icon("model"), label, path)
                combo.setItemData(combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        for listed in self.remote_lists():
            if combo.count():
                combo.insertSeparator(combo.count())
            if listed.failure is not None:  # it names the endpoint
                self._add_note(f"⚠ {listed.failure}")
            elif listed.pending:
                self._add_note(f"{listed.endpoint}: listing its models…")
            elif not listed.models:
                self._add_note(f"{listed.endpoint}: no models")
            for name in listed.models:
                if name not in self._recent:
                    combo.addItem(action_icon("send"), name, name)
                    combo.setItemData(combo.count() - 1, name, Qt.ItemDataRole.ToolTipRole)
        at = combo.findData(current) if current else -1
        combo.setCurrentIndex(at)
        combo.blockSignals(False)
        if notify and self.current_model() != before:
            self._on_index(combo.currentIndex())

    def _add_note(self, text: str) -> None:
        """A line of the list that cannot be chosen (a failure, or models being listed)."""
        combo = self.combo
        combo.addItem(text)
        at = combo.count() - 1
        combo.setItemData(at, text, Qt.ItemDataRole.ToolTipRole)
        model = combo.model()
        if isinstance(model, QStandardItemModel):
            item = model.item(at)
            if item is not None:
                item.setEnabled(False)

    def _show_remote_info(self) -> None:
        """The line under the list for a remote model: which endpoint runs it."""
        model = self.current_model()
        settings = self.settings
        target = settings.remote_target(model) if settings is not None and model else None
        endpoint = settings.endpoint(target.endpoint) if settings and target else None
        if target is None or endpoint is None:
            return
        self.info.setText(
            f"Runs {target.model} on the endpoint {endpoint.name} ({endpoint.base_url})"
        )
        self.info.setStyleSheet("")
        self.info.setToolTip(str(target))
        self.chat_template = None
        self._show_format()

    def set_info(
        self, path: str, text: str, ok: bool = True, chat_template: bool | None = None
    ) -> None:
        """The metadata line of `path` (ignored unless it is the current model), and whether
        the model has a chat template (None: not known)."""
        if path != (self.current_model() or "") or self.is_remote(path):
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
        local = bool(self.current_model()) and not self.is_remote(self.current_model())
        text = format_line(self.prompt_format, self.chat_template)
        self.format_line.setText(text if local else "")
        self.format_line.setVisible(local)

    def _on_index(self, _index: int) -> None:
        self.info.setText("Reading the model's metadata…" if self.current_model() else "")
        self.info.setStyleSheet("")
        self.chat_template = None
        self._show_format()
        self._show_remote_info()
        self.model_changed.emit(self.current_model() or "")
