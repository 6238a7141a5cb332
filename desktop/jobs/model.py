"""The jobs table model: one row per job, keyed by id, changed in place as events arrive."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)

from desktop.common import formatting
from desktop.common.icons import state_icon
from desktop.jobs.batches import short_id
from desktop.jobs.row import JobRow, cancel_text
from worker.jobs.job import JobState
from worker.queue.events import Event

Index = QModelIndex | QPersistentModelIndex

STATE_ORDER = {s: n for n, s in enumerate(JobState)}
# Sorts after every queue position. A float: under PySide6 6.11 an int beyond 32 bits did
# not sort after small ones in Qt's proxy (unqueued rows stayed first).
NO_POSITION = float(1 << 40)


class Column(IntEnum):
    STATE = 0
    TITLE = 1
    BATCH = 2
    MODEL = 3
    PROGRESS = 4
    LEFT = 5
    TPS = 6
    POSITION = 7
    CREATED = 8
    DURATION = 9


HEADERS = {
    Column.STATE: "State",
    Column.TITLE: "Title",
    Column.BATCH: "Batch",
    Column.MODEL: "Model",
    Column.PROGRESS: "Progress",
    Column.LEFT: "Left",
    Column.TPS: "Tok/s",
    Column.POSITION: "#",
    Column.CREATED: "Created",
    Column.DURATION: "Duration",
}
HEADER_TIPS = {
    Column.BATCH: "The batch the job belongs to (its id's start), and its line's custom_id",
    Column.PROGRESS: "Loading the model, reading the prompt, then tokens generated of the maximum",
    Column.LEFT: "About how long a running job has left (shown once its speed is steady)",
    Column.TPS: "Tokens generated per second",
    Column.POSITION: "Position in the queue (1 runs next)",
}
_RIGHT = {Column.LEFT, Column.TPS, Column.POSITION, Column.DURATION}


class Role(IntEnum):
    JOB_ID = Qt.ItemDataRole.UserRole + 1
    ROW = Qt.ItemDataRole.UserRole + 2
    SORT = Qt.ItemDataRole.UserRole + 3
    STATE = Qt.ItemDataRole.UserRole + 4


class JobsModel(QAbstractTableModel):
    """Rows in submission order; updates emit dataChanged for the cells that changed only."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[JobRow] = []
        self._index: dict[str, int] = {}
        self._active: set[str] = set()  # loading or running: their durations tick
        self._waiting: set[str] = set()  # queued until a next try: their countdowns tick
        self._clock = time.time

    # --- Qt model API -----------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        column = Column(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Role.JOB_ID:
            return row.id
        if role == Role.ROW:
            return row
        if role == Role.STATE:
            return row.state.value
        if role == Role.SORT:
            return self._sort_key(row, column)
        if role == Qt.ItemDataRole.DecorationRole and column == Column.STATE:
            return state_icon(row.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, row: JobRow, column: Column) -> str:
        if column == Column.STATE:
            if row.cancel_requested and row.state.active:
                return "stopping"
            return row.state.value
        if column == Column.TITLE:
            return row.title
        if column == Column.BATCH:
            if not row.batch:
                return ""
            return f"{short_id(row.batch)} · {row.custom_id}" if row.custom_id else row.batch
        if column == Column.MODEL:
            return row.model
        if column == Column.PROGRESS:
            if row.waiting:
                return row.waiting_note(self._clock(), brief=True) or ""
            if row.note and row.phase == "loading":
                return row.brief or row.note
            return formatting.progress_text(row.phase, row.done, row.total, row.state.finished)
        if column == Column.LEFT:
            return formatting.duration(row.time_left)
        if column == Column.TPS:
            return formatting.rate(row.tps) if row.phase == "generating" else ""
        if column == Column.POSITION:
            return str(row.queue_position) if row.queue_position else ""
        if column == Column.CREATED:
            return formatting.timestamp(row.created_at)
        return formatting.duration(self._duration(row))

    def _duration(self, row: JobRow) -> float | None:
        if row.started_at is None:
            return None
        if row.finished_at is None and row.state.active:
            return max(0.0, self._clock() - row.started_at)
        return row.duration

    def _sort_key(self, row: JobRow, column: Column) -> Any:
        if column == Column.STATE:
            return STATE_ORDER[row.state]
        if column == Column.TITLE:
            return row.title.casefold()
        if column == Column.BATCH:
            return row.batch or ""  # the sort is stable: a batch's jobs stay in order
        if column == Column.MODEL:
            return row.model.casefold()
        if column == Column.PROGRESS:
            fraction = row.fraction
            return -1.0 if fraction is None else fraction
        if column == Column.LEFT:
            left = row.time_left
            return NO_POSITION if left is None else left
        if column == Column.TPS:
            return row.tps or 0.0
        if column == Column.POSITION:
            return float(row.queue_position or NO_POSITION)
        if column == Column.CREATED:
            return float(row.seq)
        duration = self._duration(row)
        return -1.0 if duration is None else duration

    def _tooltip(self, row: JobRow, column: Column) -> str | None:
        if column in (Column.STATE, Column.TITLE):
            text = f"{row.title}\n{row.state.value} · attempt {row.attempt} · {row.id}"
            if row.state is JobState.cancelled:
                return f"{text}\n{cancel_text(row.error, row.done)}"
            return text + (f"\n{row.error}" if row.error else "")
        if column == Column.PROGRESS and row.waiting:
            return row.waiting_note(self._clock())
        if column == Column.PROGRESS and row.note and row.phase == "loading":
            return row.note
        if column == Column.BATCH and row.batch:
            line = f"\nline {row.custom_id}" if row.custom_id else ""
            return f"batch {row.batch}{line}"
        if column in (Column.PROGRESS, Column.LEFT) and row.time_left is not None:
            return f"about {formatting.duration(row.time_left)} left"
        if column == Column.POSITION and row.queue_position:
            return f"#{row.queue_position} in the queue (1 runs next)"
        return None

    # --- reading ----------------------------------------------------------------------

    def row_at(self, row: int) -> JobRow:
        return self._rows[row]

    def row_of(self, job_id: str) -> int | None:
        return self._index.get(job_id)

    def job(self, job_id: str) -> JobRow | None:
        row = self._index.get(job_id)
        return None if row is None else self._rows[row]

    def ids(self, states: Iterable[JobState] | None = None) -> list[str]:
        wanted = set(states) if states is not None else None
        return [r.id for r in self._rows if wanted is None or r.state in wanted]

    def counts(self) -> Counter[JobState]:
        return Counter(row.state for row in self._rows)

    def loading_models(self) -> list[str]:
        """The models jobs are loading now (file names, sorted)."""
        return sorted({row.model for row in self._rows if row.state is JobState.loading})

    def batch_counts(self) -> dict[str, Counter[JobState]]:
        """Each batch's jobs by state, in the order of the batches' first jobs."""
        batches: dict[str, Counter[JobState]] = {}
        for row in self._rows:
            if row.batch:
                batches.setdefault(row.batch, Counter())[row.state] += 1
        return batches

    # --- changes ----------------------------------------------------------------------

    def sync(self, rows: list[JobRow]) -> None:
        """Make the model equal `rows` (a full snapshot), changing only what differs."""
        if not self._rows:
            self.beginResetModel()
            self._rows = list(rows)
            self._reindex()
            self.endResetModel()
            return
        wanted = {row.id for row in rows}
        self.remove([row.id for row in self._rows if row.id not in wanted])
        self.upsert(rows)

    def upsert(self, rows: Iterable[JobRow]) -> None:
        """Replace known jobs' rows and append new ones (in submission order)."""
        added: list[JobRow] = []
        changed: list[int] = []
        for row in rows:
            at = self._index.get(row.id)
            if at is None:
                added.append(row)
                continue
            merged = self._rows[at].merged(row)
            if merged != self._rows[at]:
                self._rows[at] = merged
                self._track(merged)
                changed.append(at)
        self._changed(changed, Column.STATE, Column.DURATION)
        if added:
            added.sort(key=lambda r: r.seq)
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(added) - 1)
            self._rows.extend(added)
            for offset, row in enumerate(added):
                self._index[row.id] = first + offset
                self._track(row)
            self.endInsertRows()

    def remove(self, job_ids: Iterable[str]) -> None:
        doomed = sorted({self._index[i] for i in job_ids if i in self._index}, reverse=True)
        if not doomed:
            return
        ranges: list[list[int]] = []
        for at in doomed:  # contiguous runs, from the bottom up
            if ranges and ranges[-1][0] == at + 1:
                ranges[-1][0] = at
            else:
                ranges.append([at, at])
        for first, last in ranges:
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        self._reindex()

    def apply_progress(self, events: Iterable[Event]) -> None:
        """Patch progress and speed from progress events; stale ones are ignored."""
        changed: set[int] = set()
        for event in events:
            at = self._index.get(event.job_id)
            if at is None:
                continue
            updated = self._rows[at].with_progress(event.data)
            if updated is not None and updated != self._rows[at]:
                self._rows[at] = updated
                changed.add(at)
        self._changed(changed, Column.PROGRESS, Column.TPS)  # LEFT lies between

    def apply_positions(self, positions: Mapping[str, int]) -> None:
        """Set every row's queue position (absent: not queued)."""
        changed = []
        for at, row in enumerate(self._rows):
            position = positions.get(row.id)
            if position != row.queue_position:
                self._rows[at] = replace(row, queue_position=position)
                changed.append(at)
        if changed:
            top = self.index(min(changed), Column.POSITION)
            self.dataChanged.emit(top, self.index(max(changed), Column.POSITION))

    def tick(self) -> None:
        """Refresh the live durations of running jobs and the countdowns of waiting ones."""
        for ids, column in ((self._active, Column.DURATION), (self._waiting, Column.PROGRESS)):
            rows = [self._index[i] for i in ids if i in self._index]
            if rows:
                top = self.index(min(rows), column)
                self.dataChanged.emit(top, self.index(max(rows), column))

    def _changed(self, rows: Iterable[int], first: Column, last: Column) -> None:
        for at in sorted(rows):
            self.dataChanged.emit(self.index(at, first), self.index(at, last))

    def _reindex(self) -> None:
        self._index = {row.id: at for at, row in enumerate(self._rows)}
        self._active = {row.id for row in self._rows if row.state.active}
        self._waiting = {row.id for row in self._rows if row.waiting}

    def _track(self, row: JobRow) -> None:
        if row.state.active:
            self._active.add(row.id)
        else:
            self._active.discard(row.id)
        if row.waiting:
            self._waiting.add(row.id)
        else:
            self._waiting.discard(row.id)
