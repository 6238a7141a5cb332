"""The one summary after a drop (or Add files): what was queued, and each refused file, why."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.common.formatting import plural
from desktop.common.icons import state_icon
from desktop.services.drops import DropOutcome
from worker.jobs.job import JobState


def headline(outcome: DropOutcome) -> str:
    """'Queued 7 jobs from 5 files; refused 2 files.'"""
    jobs = len(outcome.job_ids)
    files = len(outcome.queued)
    if outcome.error:
        text = f"Nothing was queued: {outcome.error}"
    elif jobs:
        text = f"Queued {plural(jobs, 'job')} from {plural(files, 'file')}"
        if outcome.batches:
            text += f" ({plural(len(outcome.batches), 'batch', 'batches')})"
    else:
        text = "Nothing was queued"
    if outcome.refused:
        text += f"; refused {plural(len(outcome.refused), 'file')}"
    return text + "."


def title(outcome: DropOutcome) -> str:
    """How the files came: 'Added files' (File > Add files) or 'Dropped files'."""
    return "Added files" if outcome.added else "Dropped files"


class DropSummary(QDialog):
    """Lists queued files (with their job counts) and refused ones (with the reason)."""

    def __init__(self, outcome: DropOutcome, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.outcome = outcome
        self.setWindowTitle(title(outcome))
        self.setModal(False)
        self.resize(680, 360)
        self.heading = QLabel(headline(outcome))
        self.heading.setWordWrap(True)
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.heading.setFont(font)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["File", "Result"])
        self.tree.setRootIsDecorated(bool(outcome.bad_lines))  # a refused file's bad lines
        self.tree.setAlternatingRowColors(True)
        self.tree.setWordWrap(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self._list(outcome)
        self.tree.resizeColumnToContents(0)
        header.resizeSection(0, min(max(header.sectionSize(0), 160), 300))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        if close is not None:
            close.setDefault(True)
            close.setFocus()
        self.tree.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)

    def _list(self, outcome: DropOutcome) -> None:
        """Refused files (a file's bad lines under it), then queued ones."""
        for refusal in outcome.refused:
            item = QTreeWidgetItem([refusal.path.name or str(refusal.path), refusal.reason])
            item.setIcon(0, state_icon(JobState.failed))
            item.setToolTip(0, str(refusal.path))
            item.setToolTip(1, refusal.reason)
            self.tree.addTopLevelItem(item)
            for problem in outcome.bad_lines.get(refusal.path, []):  # each bad line
                line = QTreeWidgetItem(item, [problem])
                line.setFirstColumnSpanned(True)
                line.setToolTip(0, problem)
            item.setExpanded(True)
        for path, ids in outcome.queued:
            result = f"queued {plural(len(ids), 'job')}"
            if path in outcome.batches:
                result = f"batch {outcome.batches[path]}: {result}"
            item = QTreeWidgetItem([path.name, result])
            item.setIcon(0, state_icon(JobState.succeeded))
            item.setToolTip(0, str(path))
            item.setToolTip(1, result)
            self.tree.addTopLevelItem(item)

    def rows(self) -> list[tuple[str, str]]:
        """(file, result) as listed: refusals first."""
        items = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        return [(item.toolTip(0), item.text(1)) for item in items if item is not None]

    def problems(self, row: int) -> list[str]:
        """The bad lines listed under a refused file (row as in `rows`)."""
        item = self.tree.topLevelItem(row)
        if item is None:
            return []
        return [child.text(0) for n in range(item.childCount()) if (child := item.child(n))]
