"""The settings dialog's remote endpoints: a compact table, Add / Edit / Remove, their keys."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import SecretStr
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.common.icons import set_icon
from desktop.services.offthread import run_off_thread
from desktop.window.endpointform import EndpointForm
from worker.endpoints.config import Endpoint
from worker.endpoints.keystore import KeyStore
from worker.settings import Settings

RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
HEADERS = ("Name", "Base URL", "Max", "Req/min", "Key")
HEADER_TIPS = (
    "Jobs name its models NAME/MODEL",
    "The OpenAI-compatible API's address",
    "Requests in flight at once",
    "Requests started a minute (no limit: none of ours)",
    "Where its key comes from (a key is never shown)",
)


@dataclass(frozen=True)
class EndpointRow:
    """An endpoint as the dialog has it: `endpoint` without its key; `key` a key typed since
    (stored on save); `kept` the name a stored key is kept under (None: none, or forgotten)."""

    endpoint: Endpoint
    key: str = ""
    kept: str | None = None


@dataclass(frozen=True)
class KeyFacts:
    """Read off the GUI thread (a keyring may be slow or locked): where keys go, and which
    of the loaded endpoints have one stored."""

    where: str
    stored: dict[str, bool]


def _read_key_facts(keys: KeyStore, names: list[str]) -> KeyFacts:
    return KeyFacts(keys.where, {name: bool(keys.get(name)) for name in names})


class EndpointList(QWidget):
    """Edits the endpoints; nothing is written until the settings dialog saves.

    A key is never shown: the Key column says "set", "from $VAR" or "none".
    """

    changed = Signal()
    facts_read = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.rows = [
            EndpointRow(
                e.without_key(),
                e.api_key.get_secret_value() if e.api_key is not None else "",
                e.name,
            )
            for e in settings.endpoints
        ]
        self.originals = [e.name for e in settings.endpoints]
        self.facts: KeyFacts | None = None
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        for column, tip in enumerate(HEADER_TIPS):
            header_item = self.table.horizontalHeaderItem(column)
            if header_item is not None:
                header_item.setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        row_height = self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(header.sizeHint().height() + row_height * 4 + 4)
        self.table.itemSelectionChanged.connect(self._selection)
        self.table.itemDoubleClicked.connect(lambda _: self.edit())
        self.add_button = QPushButton("Add…")
        set_icon(self.add_button, "add")
        self.add_button.setToolTip("Add a remote OpenAI-compatible endpoint")
        self.add_button.clicked.connect(self.add)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self.edit)
        self.remove_button = QPushButton("Remove")
        set_icon(self.remove_button, "clear")
        self.remove_button.setToolTip("Remove the endpoint (its stored key is deleted on save)")
        self.remove_button.clicked.connect(self.remove)
        buttons = QVBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._fill()
        keys, names = settings.keys, list(self.originals)
        run_off_thread(self, lambda: _read_key_facts(keys, names), self._facts)

    # --- the table --------------------------------------------------------------------

    def key_text(self, row: EndpointRow) -> str:
        if row.endpoint.api_key_env:
            return f"from ${row.endpoint.api_key_env}"
        if row.key:
            return "set"
        if row.kept is None:
            return "none"
        if self.facts is None:
            return "…"
        return "set" if self.facts.stored.get(row.kept) else "none"

    def _fill(self) -> None:
        selected = self.current()
        self.table.setRowCount(len(self.rows))
        for at, row in enumerate(self.rows):
            e = row.endpoint
            rpm = e.requests_per_minute
            texts = (
                e.name,
                e.base_url,
                str(e.max_concurrency),
                "no limit" if rpm is None else f"{rpm:g}",
                self.key_text(row),
            )
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column in (2, 3):
                    item.setTextAlignment(RIGHT)
                self.table.setItem(at, column, item)
        if selected is not None and selected < len(self.rows):
            self.table.selectRow(selected)
        self._selection()

    def _selection(self) -> None:
        chosen = self.current() is not None
        self.edit_button.setEnabled(chosen)
        self.remove_button.setEnabled(chosen)

    def current(self) -> int | None:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return min(rows) if rows else None

    def _stored(self, name: str | None) -> bool:
        """Whether a key is stored under `name` (while not known yet: True)."""
        if name is None:
            return False
        return self.facts is None or self.facts.stored.get(name, False)

    def _facts(self, facts: KeyFacts | None, error: BaseException | None) -> None:
        self.facts = facts if facts is not None else KeyFacts(str(self.settings.keys.file), {})
        self._fill()
        self.facts_read.emit()

    # --- editing ----------------------------------------------------------------------

    def form(self, at: int | None = None) -> EndpointForm:
        """The form for row `at` (None: a new endpoint), not yet shown."""
        row = self.rows[at] if at is not None else None
        taken = {r.endpoint.name for n, r in enumerate(self.rows) if n != at}
        kept = row is not None and (bool(row.key) or self._stored(row.kept))
        where = self.facts.where if self.facts is not None else ""
        return EndpointForm(
            self.settings,
            row.endpoint if row is not None else None,
            taken=taken,
            key_kept=kept,
            key_where=where,
            parent=self,
        )

    def add(self) -> None:
        form = self.form()
        form.accepted.connect(lambda: self.apply_form(form, None))
        form.open()

    def edit(self) -> None:
        at = self.current()
        if at is None:
            return
        form = self.form(at)
        form.accepted.connect(lambda: self.apply_form(form, at))
        form.open()

    def apply_form(self, form: EndpointForm, at: int | None) -> None:
        """Take what an accepted form holds: a new row, or row `at` changed."""
        result = form.edit()
        form.deleteLater()
        if result is None:
            return
        if at is None:
            self.rows.append(EndpointRow(result.endpoint, result.key))
        else:
            old = self.rows[at]
            forget = result.forget_key
            self.rows[at] = replace(
                old,
                endpoint=result.endpoint,
                key=result.key or ("" if forget else old.key),
                kept=None if forget else old.kept,
            )
        self._fill()
        if at is None:
            self.table.selectRow(len(self.rows) - 1)
        self.changed.emit()

    def remove(self) -> None:
        at = self.current()
        if at is None:
            return
        del self.rows[at]
        self._fill()
        self.changed.emit()

    # --- saving -----------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """The endpoints, without keys (for checking the dialog's values)."""
        return [row.endpoint for row in self.rows]

    def endpoints_to_save(self, keys: KeyStore) -> list[Endpoint]:
        """The endpoints with the keys Settings.save() is to store: those typed, and those
        kept under a name the endpoint no longer has (renamed)."""
        out = []
        for row in self.rows:
            key = row.key
            if not key and row.kept is not None and row.kept != row.endpoint.name:
                key = keys.get(row.kept) or ""
            if key and not row.endpoint.api_key_env:
                out.append(row.endpoint.model_copy(update={"api_key": SecretStr(key)}))
            else:
                out.append(row.endpoint)
        return out

    def drop_stale_keys(self, keys: KeyStore, saved: list[Endpoint]) -> None:
        """After the save: delete the keys of endpoints removed, renamed, switched to an
        environment variable or told to forget theirs."""
        keep = {row.endpoint.name for row in self.rows if row.kept == row.endpoint.name}
        keep |= {e.name for e in saved if e.api_key is not None}
        for name in [*self.originals, *(r.endpoint.name for r in self.rows)]:
            if name not in keep:
                keys.delete(name)
                keep.add(name)  # once
