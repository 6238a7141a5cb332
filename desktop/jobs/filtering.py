"""Sorting, the state and batch filters and the search text over the jobs model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel

from desktop.jobs.model import JobsModel, Role
from worker.jobs.job import JobState


class JobsFilter(QSortFilterProxyModel):
    """Shows the jobs in the chosen states (and batch) whose title, id, model, error or batch
    contain the text."""

    def __init__(self, source: JobsModel, parent: Any = None) -> None:
        super().__init__(parent)
        self._jobs = source
        self._states: frozenset[JobState] | None = None
        self._needle = ""
        self._batch: str | None = None
        self.setSourceModel(source)
        self.setSortRole(Role.SORT)
        self.setDynamicSortFilter(True)

    @property
    def states(self) -> frozenset[JobState] | None:
        return self._states

    def set_states(self, states: Iterable[JobState] | None) -> None:
        """Show only these states (None: all)."""
        wanted = frozenset(states) if states is not None else None
        if wanted != self._states:
            self.beginFilterChange()
            self._states = wanted
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    @property
    def batch(self) -> str | None:
        return self._batch

    def set_batch(self, batch: str | None) -> None:
        """Show only this batch's jobs (None: every job)."""
        if batch != self._batch:
            self.beginFilterChange()
            self._batch = batch
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_search(self, text: str) -> None:
        """Show only jobs whose title, id, model, error or batch contain the text (any case)."""
        needle = text.strip().casefold()
        if needle != self._needle:
            self.beginFilterChange()
            self._needle = needle
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(
        self, source_row: int, parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        row = self._jobs.row_at(source_row)
        if self._states is not None and row.state not in self._states:
            return False
        if self._batch is not None and row.batch != self._batch:
            return False
        return not self._needle or self._needle in row.search_text

    def job_id(self, index: QModelIndex | QPersistentModelIndex) -> str | None:
        value = index.data(Role.JOB_ID) if index.isValid() else None
        return str(value) if value else None
