"""The jobs table view: columns, progress delegate, selection, placeholder text, narrow layouts."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent, QPalette, QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from desktop.jobs.filtering import JobsFilter
from desktop.jobs.model import Column, JobsModel
from desktop.jobs.progress import ProgressDelegate

WIDTHS = {
    Column.STATE: 100,
    Column.BATCH: 150,
    Column.MODEL: 112,
    Column.PROGRESS: 140,
    Column.LEFT: 62,
    Column.TPS: 64,
    Column.POSITION: 34,
    Column.CREATED: 70,
    Column.DURATION: 68,
}
# Columns hidden (in this order) when the title would get less than TITLE_MIN pixels: the
# least useful first. Title, State, Progress and Model always stay.
NARROW = (
    Column.CREATED,
    Column.TPS,
    Column.POSITION,
    Column.DURATION,
    Column.LEFT,
    Column.BATCH,
)
TITLE_MIN = 130


class JobsTable(QTableView):
    """Rows select whole jobs; the current row is the job the detail pane shows."""

    current_job_changed = Signal(str)  # "" when none

    def __init__(self, jobs: JobsModel, proxy: JobsFilter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.proxy = proxy
        self.setModel(proxy)
        self.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(self))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setShowGrid(False)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vertical = self.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(max(26, self.fontMetrics().height() + 10))
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionsMovable(True)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Column.TITLE, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSortIndicatorClearable(True)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        for column, width in WIDTHS.items():
            header.resizeSection(column, width)
        self.setSortingEnabled(True)
        self.has_batches = False  # the batch column shows only while some job has a batch
        self._hide_columns(self.width())
        self.placeholder = "No jobs yet. Write a prompt below, or drop prompt files on the window."
        selection = self.selectionModel()
        selection.currentRowChanged.connect(self._on_current)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.current_job_changed.emit(self.proxy.job_id(current) or "")

    def current_job(self) -> str | None:
        return self.proxy.job_id(self.currentIndex())

    def selected_ids(self) -> list[str]:
        rows = self.selectionModel().selectedRows(Column.STATE)
        ids = [self.proxy.job_id(index) for index in rows]
        current = self.current_job()
        if not ids and current:
            ids = [current]
        return [i for i in ids if i]

    def select_job(self, job_id: str) -> bool:
        """Make the job current and selected, scrolled into view; False if it is not listed."""
        row = self.jobs.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.jobs.index(row, Column.TITLE))
        if not index.isValid():
            return False
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)
        return True

    def show_batch_column(self, shown: bool) -> None:
        if shown != self.has_batches:
            self.has_batches = shown
            self._hide_columns(self.width())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._hide_columns(event.size().width())

    def _hide_columns(self, width: int) -> None:
        """Show the columns that leave the title TITLE_MIN pixels of `width`."""
        hidden = set() if self.has_batches else {Column.BATCH}
        wanted = TITLE_MIN + sum(w for c, w in WIDTHS.items() if c not in hidden)
        for column in NARROW:
            if wanted <= width:
                break
            if column not in hidden:
                hidden.add(column)
                wanted -= WIDTHS[column]
        for column in NARROW:
            if (column in hidden) != self.isColumnHidden(column):
                self.setColumnHidden(column, column in hidden)

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.proxy.rowCount() > 0:
            return
        text = self.placeholder if self.jobs.rowCount() == 0 else "No jobs match the filter."
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        rect = self.viewport().rect().adjusted(24, 24, -24, -24)
        flags = int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap)
        painter.drawText(rect, flags, text)
        painter.end()
