"""Small shared widgets: an eliding label, a tinted banner and the empty-state panel."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.common.theme import heading_font


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with '…' to fit; the full text is the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text if text else "")
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(0, self.width() - 2)
        line = self._full.splitlines()[0] if self._full else ""
        text = self.fontMetrics().elidedText(line, Qt.TextElideMode.ElideRight, width)
        super().setText(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())


class Banner(QLabel):
    """A message on a rounded, tinted panel; its text keeps the theme's colour."""

    def __init__(self, tint: str = "#dc2626", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tint = QColor(tint)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setContentsMargins(10, 7, 10, 7)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fill = QColor(self.tint)
        fill.setAlphaF(0.14)
        edge = QColor(self.tint)
        edge.setAlphaF(0.5)
        painter.setPen(edge)
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)
        painter.end()
        super().paintEvent(event)


class EmptyState(QWidget):
    """A centred icon, heading, explanation and an optional button."""

    action_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.icon = QLabel()
        self.icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heading = QLabel()
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heading.setWordWrap(True)
        self.heading.setFont(heading_font(self.heading.font(), 1.35))
        self.text = QLabel()
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setOpenExternalLinks(True)
        self.text.setMaximumWidth(460)
        self.button = QPushButton()
        self.button.clicked.connect(self.action_clicked)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        column = QVBoxLayout(self)
        column.setContentsMargins(24, 24, 24, 24)
        column.setSpacing(12)
        column.addStretch(1)
        column.addWidget(self.icon)
        column.addWidget(self.heading)
        center = QHBoxLayout()
        center.addStretch(1)
        center.addWidget(self.text, 10)
        center.addStretch(1)
        column.addLayout(center)
        column.addLayout(row)
        column.addStretch(2)

    def set_content(
        self, icon: QIcon, heading: str, text: str, button: str | None = None, size: int = 72
    ) -> None:
        self.icon.setPixmap(icon.pixmap(size, size))
        self.heading.setText(heading)
        self.text.setText(text)
        self.button.setVisible(bool(button))
        self.button.setText(button or "")
