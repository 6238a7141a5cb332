"""The library's models as a Qt table: columns, colours, numeric sort keys, the search filter."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor

from worker.library.fit import CPU_ONLY, FITS_GPU, TOO_LARGE
from worker.library.listing import LibraryModel
from worker.modelfile.info import human_bytes, human_count

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
MODEL_ROLE = Qt.ItemDataRole.UserRole + 2
FIT_COLORS = {FITS_GPU: "#15803d", TOO_LARGE: "#dc2626"}  # CPU only: the text's own colour
FIT_RANK = {FITS_GPU: 0, CPU_ONLY: 1, TOO_LARGE: 2}
Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    model = 0
    source = 1
    origin = 2
    architecture = 3
    parameters = 4
    quantization = 5
    context = 6
    template = 7
    size = 8
    fit = 9


HEADERS = {
    Column.model: "Name",
    Column.source: "Source",
    Column.origin: "Origin",
    Column.architecture: "Architecture",
    Column.parameters: "Parameters",
    Column.quantization: "Quantization",
    Column.context: "Context",
    Column.template: "Chat template",
    Column.size: "Size",
    Column.fit: "Fit",
}
NUMERIC = (Column.parameters, Column.context, Column.size)


def cell_text(model: LibraryModel, column: Column) -> str:
    facts = model.facts
    if column is Column.model:
        return model.name
    if column is Column.source:
        return model.source
    if column is Column.origin:
        return model.origin
    if column is Column.architecture:
        return facts.architecture or ""
    if column is Column.parameters:
        return human_count(facts.parameters) if facts.parameters else ""
    if column is Column.quantization:
        return facts.quantization or ""
    if column is Column.context:
        return f"{facts.context_length:,}" if facts.context_length else ""
    if column is Column.template:
        return "yes" if facts.chat_template else "no"
    if column is Column.size:
        parts = f" ({model.parts} parts)" if model.parts > 1 else ""
        return human_bytes(model.size) + parts
    return model.fit


def sort_key(model: LibraryModel, column: Column) -> Any:
    """Numbers for the numeric columns (an unknown one sorts first), words otherwise."""
    facts = model.facts
    if column is Column.parameters:
        return facts.parameters or 0
    if column is Column.context:
        return facts.context_length or 0
    if column is Column.size:
        return model.size
    if column is Column.fit:
        return FIT_RANK.get(model.fit, 3)
    return cell_text(model, column).lower()


def tooltip(model: LibraryModel) -> str:
    lines = [str(model.path)]
    if model.parts > 1:
        lines.append(f"the first of {model.parts} parts")
    lines.append(f"needs about {human_bytes(model.needs)} with the settings' context")
    return "\n".join(lines)


class ModelsTableModel(QAbstractTableModel):
    """One row per model of the library."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[LibraryModel] = []

    def set_models(self, models: list[LibraryModel]) -> None:
        self.beginResetModel()
        self.rows = list(models)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        model = self.rows[index.row()]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(model, column)
        if role == SORT_ROLE:
            return sort_key(model, column)
        if role == MODEL_ROLE:
            return model
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(model)
        if role == Qt.ItemDataRole.ForegroundRole and column is Column.fit:
            color = FIT_COLORS.get(model.fit)
            return QColor(color) if color else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class ModelsFilter(QSortFilterProxyModel):
    """The rows whose name, origin, source or architecture hold every word searched for;
    sorted by SORT_ROLE (numbers for sizes and counts)."""

    SEARCHED = (Column.model, Column.origin, Column.source, Column.architecture)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.words: list[str] = []
        self.setSortRole(SORT_ROLE)

    def set_search(self, text: str) -> None:
        self.beginFilterChange()
        self.words = text.lower().split()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self.words:
            return True
        source = self.sourceModel()
        if not isinstance(source, ModelsTableModel) or source_row >= len(source.rows):
            return True
        model = source.rows[source_row]
        haystack = " ".join(cell_text(model, c) for c in self.SEARCHED).lower()
        return all(word in haystack for word in self.words)

    def lessThan(self, left: Index, right: Index) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a < b
        return str(a) < str(b)
