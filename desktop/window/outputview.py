"""A read-only text view that appends streamed text and follows the end unless scrolled up."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont, QTextCursor, QTextOption
from PySide6.QtWidgets import QPlainTextEdit, QWidget

FLUSH_MS = 40  # appends are gathered this long: one relayout of a long paragraph, not dozens


class OutputView(QPlainTextEdit):
    """Appends without moving the user's selection; keeps to the bottom while it is there.

    Streamed text is gathered for FLUSH_MS and inserted at once: each insert lays out the
    last paragraph again, and a long paragraph fed token by token would cost that dozens of
    times a second.
    """

    def __init__(self, parent: QWidget | None = None, placeholder: str = "") -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setPlaceholderText(placeholder)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.05)
        self.setFont(font)
        self.document().setDocumentMargin(10)
        self._pending: list[str] = []
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(FLUSH_MS)
        self._flush.timeout.connect(self.flush)

    def at_end(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def set_text(self, text: str) -> None:
        self._pending.clear()
        self._flush.stop()
        self.setPlainText(text)
        self.scroll_to_end()

    def append_text(self, text: str) -> None:
        """Add streamed text (shown within FLUSH_MS)."""
        if text:
            self._pending.append(text)
            if not self._flush.isActive():
                self._flush.start()

    def flush(self) -> None:
        """Insert the gathered text now."""
        self._flush.stop()
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        follow = self.at_end()
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        if follow:
            self.scroll_to_end()

    def text(self) -> str:
        """Everything shown and about to be."""
        return self.toPlainText() + "".join(self._pending)

    def scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
