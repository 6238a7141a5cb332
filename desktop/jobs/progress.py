"""Paints the per-job progress bar in the table: prompt processing, then tokens of max."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from desktop.jobs.model import Role
from desktop.jobs.row import JobRow
from worker.jobs.job import JobState

STATE_COLORS = {
    JobState.queued: QColor("#7c8594"),
    JobState.loading: QColor("#3b82f6"),
    JobState.running: QColor("#3b82f6"),
    JobState.succeeded: QColor("#16a34a"),
    JobState.failed: QColor("#dc2626"),
    JobState.cancelled: QColor("#8b8f98"),
}
PROMPT_COLOR = QColor("#8b5cf6")


class ProgressDelegate(QStyledItemDelegate):
    """A slim rounded bar with the count on it; no widget per row."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        row = index.data(Role.ROW)
        if not isinstance(row, JobRow) or row.fraction is None:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:  # selection background, focus frame
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        rect = QRectF(opt.rect).adjusted(4, 5, -4, -5)
        if rect.width() < 8 or rect.height() < 4:
            return
        palette: QPalette = opt.palette
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        radius = min(4.0, rect.height() / 2)
        track = QColor(palette.color(QPalette.ColorRole.Text))
        track.setAlphaF(0.10)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(track)
        painter.drawRoundedRect(rect, radius, radius)
        color = PROMPT_COLOR if row.phase == "prompt" else STATE_COLORS[row.state]
        fill = QColor(color)
        fill.setAlphaF(0.45 if row.phase == "loading" else 0.85)
        width = rect.width() * (1.0 if row.phase == "loading" else row.fraction)
        if width > 0:
            painter.setBrush(fill)
            bar = QRectF(rect.x(), rect.y(), width, rect.height())
            painter.drawRoundedRect(bar, radius, radius)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        if text:
            selected = bool(opt.state & QStyle.StateFlag.State_Selected)
            role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
            painter.setPen(palette.color(role))
            font = opt.font
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
            painter.setFont(font)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(max(hint.width(), 120), hint.height())
