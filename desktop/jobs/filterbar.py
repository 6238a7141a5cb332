"""The row above the table: state filter buttons with counts, the batch filter, the search box."""

from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QToolButton,
    QWidget,
)

from desktop.common.icons import state_icon
from desktop.jobs.batches import BatchSummary
from worker.jobs.job import JobState

ACTIVE = frozenset({JobState.queued, JobState.loading, JobState.running})
FILTERS: list[tuple[str, frozenset[JobState] | None]] = [
    ("All", None),
    ("Active", ACTIVE),
    ("Succeeded", frozenset({JobState.succeeded})),
    ("Failed", frozenset({JobState.failed})),
    ("Cancelled", frozenset({JobState.cancelled})),
]
ICONS = {
    "Active": JobState.running,
    "Succeeded": JobState.succeeded,
    "Failed": JobState.failed,
    "Cancelled": JobState.cancelled,
}


ALL_BATCHES = "All batches"


class SearchField(QLineEdit):
    """The search box: Escape clears it (and goes on to the window when it is empty)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.text():
            self.clear()
            event.accept()
            return
        super().keyPressEvent(event)


class FilterBar(QWidget):
    """Emits the states to show (None: all), the batch (None: every job) and the search text.

    The batch list shows while some job belongs to a batch; with a batch chosen the state
    buttons count that batch's jobs.
    """

    states_changed = Signal(object)  # frozenset[JobState] | None
    batch_changed = Signal(object)  # str | None
    search_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        for n, (name, _) in enumerate(FILTERS):
            button = QToolButton()
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setText(name)
            if name in ICONS:
                button.setIcon(state_icon(ICONS[name]))
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            self.group.addButton(button, n)
            self.buttons[name] = button
            layout.addWidget(button)
        self.buttons["All"].setChecked(True)
        self.group.idClicked.connect(self._on_clicked)
        self.batch = QComboBox()
        self.batch.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.batch.setToolTip("Show one batch's jobs")
        self.batch.addItem(ALL_BATCHES, None)
        self.batch.currentIndexChanged.connect(self._on_batch)
        self.batch.hide()
        layout.addSpacing(6)
        layout.addWidget(self.batch)
        self._counts: Counter[JobState] = Counter()
        self._batches: dict[str, BatchSummary] = {}
        self._filling = False
        layout.addStretch(1)
        self.search = SearchField()
        self.search.setPlaceholderText("Search title, id, model, error, batch… (Esc clears)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(120)
        self.search.setMaximumWidth(320)
        self.search.textChanged.connect(self.search_changed)
        layout.addWidget(self.search, 1)

    def _on_clicked(self, index: int) -> None:
        self.states_changed.emit(FILTERS[index][1])

    def choose(self, name: str) -> None:
        index = [n for n, _ in FILTERS].index(name)
        self.buttons[name].setChecked(True)
        self._on_clicked(index)

    def current(self) -> str:
        return FILTERS[max(0, self.group.checkedId())][0]

    def set_counts(self, counts: Counter[JobState]) -> None:
        """Every job's counts by state (shown unless a batch is chosen)."""
        self._counts = counts
        self._show_counts()

    def _show_counts(self) -> None:
        chosen = self.current_batch()
        summary = self._batches.get(chosen) if chosen else None
        counts = summary.counts if summary is not None else self._counts
        for name, states in FILTERS:
            total = sum(counts.values()) if states is None else sum(counts[s] for s in states)
            self.buttons[name].setText(f"{name} {total:,}" if total else name)

    # --- batches ------------------------------------------------------------------------

    def current_batch(self) -> str | None:
        value = self.batch.currentData()
        return str(value) if value else None

    def set_batches(self, batches: list[BatchSummary]) -> None:
        """The batches with jobs in the table; the chosen one stays chosen while it has jobs.
        The list is changed in place when the same batches are listed (an open list stays)."""
        self._batches = {b.batch_id: b for b in batches}
        chosen = self.current_batch()
        listed = [self.batch.itemData(at) for at in range(1, self.batch.count())]
        self._filling = True
        try:
            if listed != [b.batch_id for b in batches]:
                self.batch.clear()
                self.batch.addItem(ALL_BATCHES, None)
                for summary in batches:
                    self.batch.addItem(summary.label(), summary.batch_id)
                at = self.batch.findData(chosen) if chosen else 0
                self.batch.setCurrentIndex(max(at, 0))
            for at, summary in enumerate(batches, start=1):
                self.batch.setItemText(at, summary.label())
                tip = f"{summary.batch_id}\n{summary.describe()}"
                self.batch.setItemData(at, tip, Qt.ItemDataRole.ToolTipRole)
        finally:
            self._filling = False
        self.batch.setVisible(bool(batches))
        self._show_batch()
        if self.current_batch() != chosen:  # its jobs are gone
            self.batch_changed.emit(self.current_batch())

    def choose_batch(self, batch_id: str | None) -> bool:
        """Show this batch's jobs (None: every job); False if no job of it is listed."""
        at = self.batch.findData(batch_id) if batch_id else 0
        if at < 0:
            return False
        self.batch.setCurrentIndex(at)
        return True

    def _on_batch(self, _index: int) -> None:
        if not self._filling:
            self._show_batch()
            self.batch_changed.emit(self.current_batch())

    def _show_batch(self) -> None:
        """The chosen batch's counts on the buttons, and its details in the tooltip."""
        chosen = self.current_batch()
        summary = self._batches.get(chosen) if chosen else None
        tip = f"{summary.batch_id}\n{summary.describe()}" if summary else "Show one batch's jobs"
        self.batch.setToolTip(tip)
        self._show_counts()
