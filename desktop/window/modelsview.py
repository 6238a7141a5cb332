"""The Models window: every model on this machine (use, reveal, hide, delete) and downloads."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.common import formatting
from desktop.common.icons import set_icon
from desktop.services.hubclient import Hub
from desktop.services.library import LibraryService
from desktop.services.librarymarks import delete_downloaded
from desktop.window.modeldownload import ERROR_STYLE, DownloadSection
from desktop.window.modelstable import MODEL_ROLE, Column, ModelsFilter, ModelsTableModel
from worker.library.listing import LibraryModel, Listing
from worker.modelfile.info import human_bytes

LIBRARY, DOWNLOAD = "library", "download"


class LibraryPage(QWidget):
    """The library's table with its search, the skipped entries, and the selected model's
    actions."""

    use_requested = Signal(str)  # the path to make the default model

    def __init__(self, library: LibraryService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self._select_after: str | None = None  # a download: selected once it is listed
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name, origin, source, architecture")
        self.search.setClearButtonEnabled(True)
        self.count = QLabel()
        self.count.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.refresh_button = QPushButton("Refresh")
        set_icon(self.refresh_button, "restart")
        self.refresh_button.setToolTip("Look for models again (new files, other tools' models)")
        self.refresh_button.clicked.connect(library.refresh)
        self.model = ModelsTableModel(self)
        self.proxy = ModelsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.search.textChanged.connect(self.proxy.set_search)
        self._build_table()
        self._build_actions()
        self._layout()
        library.scanning.connect(self._scanning)
        library.listed.connect(self._listed)
        library.failed.connect(self._failed)
        if library.listing is not None:
            self._listed(library.listing)
        elif library.busy:
            self._scanning()
        self._update_actions()

    def _build_table(self) -> None:
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.fit, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.table.doubleClicked.connect(lambda _: self.use_selected())
        self.skipped_link = QLabel()
        self.skipped_link.setTextFormat(Qt.TextFormat.RichText)
        self.skipped_link.linkActivated.connect(lambda _: self.toggle_skipped())
        self.skipped = QPlainTextEdit()
        self.skipped.setReadOnly(True)
        self.skipped.setMaximumHeight(72)
        self.skipped.hide()

    def _build_actions(self) -> None:
        self.use_button = QPushButton("Use as default")
        set_icon(self.use_button, "model")
        self.use_button.setToolTip("New jobs, the HTTP API and the command line use this model")
        self.use_button.clicked.connect(self.use_selected)
        self.reveal_button = QPushButton("Reveal in folder")
        set_icon(self.reveal_button, "folder")
        self.reveal_button.clicked.connect(self.reveal_selected)
        self.hide_button = QPushButton("Remove from list")
        set_icon(self.hide_button, "clear")
        self.hide_button.setToolTip("Leave it out of this list and the picker (the file stays)")
        self.hide_button.clicked.connect(self.hide_selected)
        self.delete_button = QPushButton("Delete file…")
        self.delete_button.setToolTip("PromptSpool downloaded this file: delete it from the disk")
        self.delete_button.clicked.connect(self.confirm_delete)
        self.confirm_box: QMessageBox | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.hide()

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.count)
        top.addWidget(self.refresh_button)
        actions = QHBoxLayout()
        actions.addWidget(self.skipped_link)
        actions.addStretch(1)
        for button in (self.use_button, self.reveal_button, self.hide_button, self.delete_button):
            actions.addWidget(button)
        column = QVBoxLayout(self)
        column.addLayout(top)
        column.addWidget(self.table, 1)
        column.addWidget(self.skipped)
        column.addLayout(actions)
        column.addWidget(self.message)

    # --- the listing --------------------------------------------------------------------

    def _scanning(self) -> None:
        self.count.setText("Scanning…")
        self.refresh_button.setEnabled(False)

    def _failed(self, error: str) -> None:
        self.refresh_button.setEnabled(True)
        self.count.setText("")
        self.say(f"The library could not be listed: {error}", error=True)

    def _listed(self, listing: Listing) -> None:
        selected = self.selected()
        keep = self._select_after or (str(selected.path) if selected is not None else None)
        self._select_after = None
        self.refresh_button.setEnabled(True)
        self.model.set_models(listing.models)
        self._fit_columns()
        self.count.setText(formatting.plural(len(listing.models), "model"))
        self._show_skipped(listing)
        if keep is not None:
            self.select_path(keep)
        self._update_actions()

    def _fit_columns(self) -> None:
        """Columns as wide as their text, the long ones (name, origin) within reason."""
        self.table.resizeColumnsToContents()
        for column, widest in ((Column.model, 260), (Column.origin, 220)):
            self.table.setColumnWidth(column, min(self.table.columnWidth(column), widest))

    def _show_skipped(self, listing: Listing) -> None:
        count = len(listing.skipped)
        self.skipped_link.setVisible(bool(count))
        self.skipped_link.setText(f'<a href="#skipped">Skipped: {count}</a>')
        self.skipped_link.setToolTip("Files and places that looked like models but are not: why")
        lines = [f"{s.path}  ({s.source}): {s.reason}" for s in listing.skipped]
        self.skipped.setPlainText("\n".join(lines))
        if not count:
            self.skipped.hide()

    def toggle_skipped(self) -> None:
        self.skipped.setVisible(not self.skipped.isVisible())

    def select_path(self, path: str) -> bool:
        """Select the model of this path (shown even if the search hid it)."""
        for row, model in enumerate(self.model.rows):
            if str(model.path) == path:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if not index.isValid():
                    self.search.clear()
                    index = self.proxy.mapFromSource(self.model.index(row, 0))
                flags = (
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows
                )
                self.table.selectionModel().setCurrentIndex(index, flags)
                self.table.scrollTo(index)
                return True
        return False

    def select_when_listed(self, path: str) -> None:
        self._select_after = path

    # --- the selected model ------------------------------------------------------------

    def selected(self) -> LibraryModel | None:
        rows = self.table.selectionModel().selectedRows()
        value = rows[0].data(MODEL_ROLE) if rows else None
        return value if isinstance(value, LibraryModel) else None

    def visible_models(self) -> list[LibraryModel]:
        """The rows as shown (searched, sorted)."""
        rows = (self.proxy.index(r, 0) for r in range(self.proxy.rowCount()))
        return [m for index in rows if isinstance(m := index.data(MODEL_ROLE), LibraryModel)]

    def _update_actions(self) -> None:
        model = self.selected()
        for button in (self.use_button, self.reveal_button, self.hide_button):
            button.setEnabled(model is not None)
        downloaded = model is not None and self.library.was_downloaded(model.path)
        self.delete_button.setVisible(downloaded)
        default = self.library.settings.model
        is_default = model is not None and default is not None and model.path == default
        self.use_button.setEnabled(model is not None and not is_default)
        self.use_button.setText("The default model" if is_default else "Use as default")

    def use_selected(self) -> None:
        model = self.selected()
        if model is not None:
            self.use_requested.emit(str(model.path))

    def reveal_selected(self) -> None:
        model = self.selected()
        if model is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(model.path.parent)))

    def hide_selected(self) -> None:
        model = self.selected()
        if model is not None:
            self.library.hide(model.path)
            self.say(f"{model.name} is no longer listed (the file stays: {model.path})")

    def confirm_delete(self) -> None:
        model = self.selected()
        if model is None or not self.library.was_downloaded(model.path):
            return  # never a file PromptSpool did not download
        default = self.library.settings.model
        note = " It is the default model." if default is not None and default == model.path else ""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Delete the model file",
            f"Delete {model.path.name} ({human_bytes(model.size)}) from the disk?{note}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.accepted.connect(lambda: self.delete(model))
        box.finished.connect(box.deleteLater)
        self.confirm_box = box
        box.open()  # not exec(): a nested loop inside a running task breaks qasync

    def delete(self, model: LibraryModel) -> bool:
        if not self.library.was_downloaded(model.path):
            return False
        try:
            delete_downloaded(model.path)
        except OSError as exc:
            self.say(f"Cannot delete {model.path}: {exc.strerror or exc}", error=True)
            return False
        self.library.marks.forget(model.path)
        self.say(f"Deleted {model.path}")
        self.library.refresh()
        return True

    def say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setVisible(bool(text))


class ModelsView(QDialog):
    """Models… in the File menu: the library (Library tab) and the Hub (Download tab)."""

    default_changed = Signal(object)  # Settings, saved with the new default model

    def __init__(self, library: LibraryService, hub: Hub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("models-view")
        self.library = library
        self.page = LibraryPage(library)
        self.page.use_requested.connect(self.use_as_default)
        self.download = DownloadSection(hub)
        self.download.downloaded.connect(self._downloaded)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.page, "On this machine")
        self.tabs.addTab(self.download, "Download")
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(close)
        column = QVBoxLayout(self)
        column.addWidget(self.tabs, 1)
        column.addLayout(bottom)
        self.resize(1180, 620)
        library.ensure()

    def show_section(self, section: str) -> None:
        self.tabs.setCurrentWidget(self.download if section == DOWNLOAD else self.page)

    def use_as_default(self, path: str) -> bool:
        """Save the settings with this default model (as the settings dialog saves them)."""
        updated = self.library.settings.model_copy(deep=True)
        updated.model = Path(path)
        try:
            updated.save()
        except OSError as exc:
            self.page.say(f"Cannot write the settings file: {exc}", error=True)
            return False
        self.library.set_settings(updated)
        self.page.say(f"New jobs use {Path(path).name} from now on")
        self.page._update_actions()
        self.default_changed.emit(updated)
        return True

    def _downloaded(self, path: str) -> None:
        self.page.select_when_listed(path)
        self.library.downloaded(Path(path))
        self.tabs.setCurrentWidget(self.page)
