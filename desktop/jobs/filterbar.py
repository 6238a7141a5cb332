"""The row above the table: state filter buttons with counts, and the search box."""

from __future__ import annotations

from collections import Counter

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLineEdit, QToolButton, QWidget

from desktop.common.icons import state_icon
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


class FilterBar(QWidget):
    """Emits the states to show (None: all) and the search text."""

    states_changed = Signal(object)  # frozenset[JobState] | None
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
        layout.addStretch(1)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search title, id, model, error…")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(160)
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
        for name, states in FILTERS:
            total = sum(counts.values()) if states is None else sum(counts[s] for s in states)
            self.buttons[name].setText(f"{name} {total:,}" if total else name)
