"""The Models view's Download section: search the Hub, a repo's GGUF files, one download."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.common import formatting
from desktop.services.hubclient import Download, Hub
from desktop.services.offthread import run_off_thread
from worker.library.hubtypes import Progress, RemoteFile, RepoHit
from worker.library.places import hugging_face_cache
from worker.modelfile.info import human_bytes, human_count

ERROR_STYLE = "QLabel { color: #dc2626; }"


def progress_text(progress: Progress) -> str:
    """'12.3 MB of 4.1 GB · 8.2 MB/s · 3 min left'."""
    text = human_bytes(progress.done)
    if progress.total:
        text += f" of {human_bytes(progress.total)}"
    if progress.speed:
        text += f" · {human_bytes(progress.speed)}/s"
    if progress.eta is not None and progress.total and progress.done < progress.total:
        text += f" · {formatting.duration(progress.eta)} left"
    return text


def repo_text(repo: RepoHit) -> str:
    text = f"{repo.id}   ·   {human_count(repo.downloads)} downloads"
    if repo.likes:
        text += f" · {human_count(repo.likes)} likes"
    return text + ("   ·   gated (needs HF_TOKEN)" if repo.gated else "")


def _short(path: Path) -> str:
    """The path with the home folder as ~."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


class DownloadSection(QWidget):
    """Search → a repository → one of its files → Download (progress, Cancel, the error as
    the Hub client words it). Into the Hugging Face cache (shared with other tools) unless
    a folder is chosen. `downloaded` names the file once it is complete."""

    downloaded = Signal(str)  # the file's path
    searched = Signal()  # the results (or the failure) of a search arrived
    files_listed = Signal()  # a repository's files (or the failure) arrived

    def __init__(self, hub: Hub, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub
        self.folder: Path | None = None  # None: the Hugging Face cache
        self.download: Download | None = None
        self.repo: RepoHit | None = None
        self._asked = 0  # the newest question: older answers are dropped
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search the Hugging Face Hub for GGUF models (e.g. qwen)")
        self.query.setClearButtonEnabled(True)
        self.query.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        self.repos = QListWidget()
        self.repos.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.repos.setSpacing(2)
        self.repos.currentItemChanged.connect(lambda *_: self._repo_chosen())
        self.files = QTableWidget(0, 3)
        self.files.setHorizontalHeaderLabels(["File", "Quantization", "Size"])
        self.files.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.files.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.files.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.files.verticalHeader().hide()
        header = self.files.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.files.itemSelectionChanged.connect(self._update_buttons)
        self.files.itemDoubleClicked.connect(lambda _: self.start())
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.folder_button = QPushButton("Choose folder…")
        self.folder_button.clicked.connect(self._choose_folder)
        self.cache_button = QPushButton("Use the Hugging Face cache")
        self.cache_button.clicked.connect(lambda: self.set_folder(None))
        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress_label = QLabel()
        self.status = QLabel("Search for a model by name: the most downloaded come first.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._layout()
        self.set_folder(None)
        self._update_buttons()

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.query, 1)
        top.addWidget(self.search_button)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.repos)
        split.addWidget(self.files)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        where = QHBoxLayout()
        where.addWidget(self.where, 1)
        where.addWidget(self.cache_button)
        where.addWidget(self.folder_button)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.progress_label)
        bar.addWidget(self.download_button)
        bar.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.addLayout(top)
        column.addWidget(split, 1)
        column.addLayout(where)
        column.addLayout(bar)
        column.addWidget(self.status)

    # --- where to -------------------------------------------------------------------

    def set_folder(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is None:
            self.where.setText(f"Saves to the Hugging Face cache ({_short(hugging_face_cache())}),"
                               " where other tools find it too")  # fmt: skip
        else:
            self.where.setText(f"Saves to {_short(folder)}")
        self.cache_button.setVisible(folder is not None)

    def _choose_folder(self) -> None:
        start = str(self.folder or Path.home())
        chosen = QFileDialog.getExistingDirectory(self, "Download models to", start)
        if chosen:
            self.set_folder(Path(chosen))

    # --- search and files -------------------------------------------------------------

    def search(self) -> None:
        query = self.query.text().strip()
        self._asked += 1
        asked = self._asked
        self.repos.clear()
        self.files.setRowCount(0)
        self.repo = None
        self._say(f"Searching the Hub for “{query}”…" if query else "Searching the Hub…")

        def done(repos: list[RepoHit] | None, error: BaseException | None) -> None:
            if asked != self._asked:
                return
            if error is not None:
                self._say(str(error) or type(error).__name__, error=True)
            elif not repos:
                self._say("No GGUF repositories match.")
            else:
                for repo in repos:
                    item = QListWidgetItem(repo_text(repo))
                    item.setData(Qt.ItemDataRole.UserRole, repo)
                    item.setToolTip(repo.id)
                    self.repos.addItem(item)
                self._say(f"{formatting.plural(len(repos), 'repository', 'repositories')}: "
                          "choose one to see its files.")  # fmt: skip
            self._update_buttons()
            self.searched.emit()

        run_off_thread(self, lambda: self.hub.search(query), done)

    def choose_repo(self, repo_id: str) -> bool:
        """Select a repository of the results (as a click does)."""
        for row in range(self.repos.count()):
            item = self.repos.item(row)
            repo = item.data(Qt.ItemDataRole.UserRole)
            if isinstance(repo, RepoHit) and repo.id == repo_id:
                self.repos.setCurrentRow(row)
                return True
        return False

    def _repo_chosen(self) -> None:
        item = self.repos.currentItem()
        repo = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if not isinstance(repo, RepoHit) or repo == self.repo:
            return
        self.repo = repo
        self._asked += 1
        asked = self._asked
        self.files.setRowCount(0)
        self._say(f"Listing the GGUF files of {repo.id}…")

        def done(files: list[RemoteFile] | None, error: BaseException | None) -> None:
            if asked != self._asked:
                return
            if error is not None:
                self._say(str(error) or type(error).__name__, error=True)
            else:
                self._show_files(files or [])
                self._say(
                    f"{repo.id}: {formatting.plural(len(files or []), 'GGUF model')}"
                    if files
                    else f"{repo.id} has no GGUF files."
                )
            self._update_buttons()
            self.files_listed.emit()

        run_off_thread(self, lambda: self.hub.files(repo.id), done)

    def _show_files(self, files: list[RemoteFile]) -> None:
        self.files.setRowCount(len(files))
        for row, entry in enumerate(files):
            name = QTableWidgetItem(entry.filename)
            name.setData(Qt.ItemDataRole.UserRole, entry)
            name.setToolTip(entry.filename)
            size = human_bytes(entry.size) if entry.size is not None else "?"
            if entry.split:
                size += f" ({len(entry.parts)} parts)"
            size_item = QTableWidgetItem(size)
            size_item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.files.setItem(row, 0, name)
            self.files.setItem(row, 1, QTableWidgetItem(entry.quantization or ""))
            self.files.setItem(row, 2, size_item)

    def chosen_file(self) -> RemoteFile | None:
        rows = self.files.selectionModel().selectedRows()
        item = self.files.item(rows[0].row(), 0) if rows else None
        entry = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return entry if isinstance(entry, RemoteFile) else None

    def choose_file(self, filename: str) -> bool:
        for row in range(self.files.rowCount()):
            item = self.files.item(row, 0)
            if item is not None and item.text() == filename:
                self.files.selectRow(row)
                return True
        return False

    # --- the download -----------------------------------------------------------------

    def start(self) -> None:
        entry = self.chosen_file()
        if entry is None or self.repo is None or self.busy:
            return
        download = Download(self.hub, self.repo.id, entry.filename, self.folder, self)
        download.connect_gui(self._progressed, self._finished)
        self.download = download
        self.progress.setRange(0, 0)
        self.progress_label.setText("")
        self._say(f"Downloading {entry.filename} from {self.repo.id}…")
        download.start()
        self._update_buttons()

    @property
    def busy(self) -> bool:
        return self.download is not None and self.download.running

    def cancel(self) -> None:
        if self.download is not None and self.download.running:
            self.download.cancel()
            self._say("Cancelling… (what came so far is kept: the next download resumes it)")

    def _progressed(self, progress: Progress) -> None:
        if progress.total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * min(progress.done / progress.total, 1.0)))
        self.progress_label.setText(progress_text(progress))

    def _finished(self, path: Path | None, error: str) -> None:
        download = self.download
        name = download.filename if download is not None else "the file"
        self.progress.setRange(0, 1000)
        if path is not None:
            self.progress.setValue(1000)
            self._say(f"Downloaded {name} to {path}")
            self.downloaded.emit(str(path))
        elif error:
            self.progress.setValue(0)
            self._say(error, error=True)
        else:
            self.progress.setValue(0)
            self.progress_label.setText("")
            self._say(f"Cancelled {name}; downloading it again resumes where it stopped.")
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.busy
        self.download_button.setEnabled(not busy and self.chosen_file() is not None)
        self.cancel_button.setEnabled(busy)
        self.folder_button.setEnabled(not busy)
        self.cache_button.setEnabled(not busy)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else "")
