"""A read-only view of streamed model output, as Markdown or raw text, following the end."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QFont, QTextCursor, QTextDocument, QTextOption
from PySide6.QtWidgets import QTextEdit, QWidget

FLUSH_MS = 40  # raw text: appends are gathered this long, one relayout rather than dozens
RENDER_MS = 150  # Markdown: a streaming document is rendered again at most this often
RENDER_MAX_MS = 1000  # ... and less often as it grows (each render lays out all of it)
RENDER_CHARS_PER_MS = 200  # text length that adds a millisecond to the render interval
MARKDOWN_MAX = 400_000  # longer texts show raw: laying out so much Markdown stalls the window
# GitHub's dialect, without raw HTML: model output is untrusted and its tags show as text.
MARKDOWN = QTextDocument.MarkdownFeature(
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
    | QTextDocument.MarkdownFeature.MarkdownNoHTML.value
)


def render_interval(length: int) -> int:
    """Milliseconds between renders of a streaming Markdown text of `length` characters."""
    return min(RENDER_MAX_MS, RENDER_MS + length // RENDER_CHARS_PER_MS)


class OutputView(QTextEdit):
    """Shows the output as Markdown (code blocks in a monospace font) or as raw text.

    Streamed text never costs a render per token: raw text is gathered for FLUSH_MS and
    appended at once; Markdown is rendered again from the whole text at most every
    RENDER_MS (longer for long texts), by a timer. While the view is at the bottom it keeps
    there; scrolled up, it stays put. Nothing is ever loaded: no images, no links followed.
    """

    def __init__(self, parent: QWidget | None = None, placeholder: str = "") -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setAcceptRichText(False)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setPlaceholderText(placeholder)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.05)
        self.setFont(font)
        self.document().setDocumentMargin(10)
        self.raw = False
        self.renders = 0  # whole-document renders so far (tests count them)
        self._text = ""  # everything received, shown or about to be
        self._shown = 0  # how much of it the document shows
        self._plain_shown = True  # the document holds it as plain text, not rendered
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    # --- the text -----------------------------------------------------------------------

    def text(self) -> str:
        """Everything received (the raw text, whichever way it is shown)."""
        return self._text

    def set_text(self, text: str) -> None:
        self._timer.stop()
        self._text = text
        self._render()
        self.scroll_to_end()

    def append_text(self, text: str) -> None:
        """Add streamed text; shown within FLUSH_MS (raw) or the render interval (Markdown)."""
        if not text:
            return
        self._text += text
        if not self._timer.isActive():
            self._timer.start(FLUSH_MS if self._plain() else render_interval(len(self._text)))

    def flush(self) -> None:
        """Show what was received now."""
        self._timer.stop()
        if self._plain() and self._plain_shown:
            if self._shown < len(self._text):
                follow = self.at_end()
                cursor = QTextCursor(self.document())
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertText(self._text[self._shown :])
                self._shown = len(self._text)
                if follow:
                    self.scroll_to_end()
        elif self._shown != len(self._text):
            self._render(keep_place=True)

    def set_raw(self, raw: bool) -> None:
        """Show the raw text (True) or render it as Markdown."""
        if raw != self.raw:
            self.raw = raw
            self._timer.stop()
            self._render(keep_place=True)

    # --- scrolling ----------------------------------------------------------------------

    def at_end(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    # --- internals ----------------------------------------------------------------------

    def _render(self, keep_place: bool = False) -> None:
        bar = self.verticalScrollBar()
        follow, value = self.at_end(), bar.value()
        self._plain_shown = self._plain()
        if self._plain_shown:
            self.setPlainText(self._text)
        else:
            self.document().setMarkdown(self._text, MARKDOWN)
            self.renders += 1
        self._shown = len(self._text)
        if keep_place:
            if follow:
                self.scroll_to_end()
            else:
                bar.setValue(value)

    def _plain(self) -> bool:
        """Whether the text is shown plain: asked for, or too long to render."""
        return self.raw or len(self._text) > MARKDOWN_MAX

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        """Nothing is fetched for the output: an image in it stays a broken image."""
        return None
