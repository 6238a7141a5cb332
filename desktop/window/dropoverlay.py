"""The drop overlay over the whole window, and the filter that takes file drops anywhere on it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QWidget

from desktop.common.icons import action_icon
from desktop.common.theme import heading_font

HEADING = "Drop to queue"
DETAIL = (
    "Each .txt, .md or .prompt file becomes one job; .json and .jsonl files hold job specs; "
    "folders are searched for them."
)


def local_paths(mime: QMimeData | None) -> list[Path]:
    """The local files and folders a drag carries (none: not a file drag)."""
    if mime is None or not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class DropOverlay(QWidget):
    """A translucent panel over the parent with a dashed frame; it takes no mouse input."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.host = parent
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.hide()
        parent.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.host and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.host.rect())
        return False

    def show_over_parent(self) -> None:
        self.setGeometry(self.host.rect())
        self.update()
        self.raise_()
        self.show()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        veil = QColor(palette.color(QPalette.ColorRole.Window))
        veil.setAlphaF(0.94)
        painter.fillRect(self.rect(), veil)
        accent = palette.color(QPalette.ColorRole.Highlight)
        frame = QRectF(self.rect()).adjusted(16, 16, -16, -16)
        tint = QColor(accent)
        tint.setAlphaF(0.08)
        painter.setBrush(tint)
        pen = QPen(accent, 2.5, Qt.PenStyle.DashLine)
        pen.setDashPattern([6, 4])
        painter.setPen(pen)
        painter.drawRoundedRect(frame, 18, 18)
        icon = action_icon("drop", accent).pixmap(64, 64)
        center = frame.center()
        painter.drawPixmap(int(center.x() - 32), int(center.y() - 96), icon)
        font = heading_font(self.font(), 1.8)
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.WindowText))
        heading = QRectF(frame.left(), center.y() - 24, frame.width(), 44)
        painter.drawText(heading, Qt.AlignmentFlag.AlignCenter, HEADING)
        font.setPointSizeF(self.font().pointSizeF())
        font.setWeight(QFont.Weight.Normal)
        painter.setFont(font)
        width = min(frame.width() - 40, 520)
        detail = QRectF(center.x() - width / 2, center.y() + 26, width, 80)
        flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        painter.drawText(detail, int(flags) | int(Qt.TextFlag.TextWordWrap), DETAIL)
        painter.end()


class DropCatcher(QObject):
    """Takes file drags on any widget of one window (text boxes included) and shows the overlay.

    Installed on the application, so a drop on the prompt editor queues the file instead of
    pasting its path.
    """

    dropped = Signal(list)  # list[Path]

    def __init__(self, window: QWidget, overlay: DropOverlay) -> None:
        super().__init__(window)
        self.window = window
        self.overlay = overlay
        self._hide = QTimer(self)
        self._hide.setSingleShot(True)
        self._hide.setInterval(120)
        self._hide.timeout.connect(overlay.hide)

    def _ours(self, watched: QObject) -> bool:
        return isinstance(watched, QWidget) and watched.window() is self.window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (
            QEvent.Type.DragEnter,
            QEvent.Type.DragMove,
            QEvent.Type.DragLeave,
            QEvent.Type.Drop,
        ) or not self._ours(watched):
            return False
        if kind == QEvent.Type.DragLeave:
            self._hide.start()  # a move to another widget of the window re-enters at once
            return False
        assert isinstance(event, QDragEnterEvent | QDragMoveEvent | QDropEvent)
        paths = local_paths(event.mimeData())
        if not paths:
            return False
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        if kind == QEvent.Type.Drop:
            self._hide.stop()
            self.overlay.hide()
            self.dropped.emit(paths)
        else:
            self._hide.stop()
            if not self.overlay.isVisible():
                self.overlay.show_over_parent()
        return True
