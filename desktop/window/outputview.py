"""A read-only view of streamed model output, as Markdown or raw text, following the end."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import (
    QFont,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextOption,
)
from PySide6.QtWidgets import QTextEdit, QWidget

FLUSH_MS = 40  # appends are gathered this long: one relayout rather than dozens
FINISH_RENDER_MAX = 2_000  # a longer last paragraph stays plain when its stream ends
MARKDOWN_MAX = 400_000  # longer texts show raw: laying out so much Markdown stalls the window
# GitHub's dialect, without raw HTML: model output is untrusted and its tags show as text.
MARKDOWN = QTextDocument.MarkdownFeature(
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
    | QTextDocument.MarkdownFeature.MarkdownNoHTML.value
)


# What Markdown would show differently from the plain text: markup, entities, escapes, line
# breaks (a paragraph's soft ones join), list and heading starts. Prose without any of it
# looks the same either way, and is not rendered again when its stream ends.
_MARKUP = re.compile(r"[*_`#\[\]<>|~\\&!\n]|^\s*(?:[-+=]|\d+[.)])")


def looks_plain(text: str) -> bool:
    """Whether the text shows the same rendered as Markdown and as plain text."""
    return _MARKUP.search(text) is None


def settled_end(text: str, start: int) -> int:
    """Where the Markdown blocks that can no longer change end: after the last blank line
    from `start` on that is outside a code fence (`start` itself when there is none yet).
    `start` must be such a place, outside any fence."""
    end = start
    fence: str | None = None
    at = start
    for line in text[start:].splitlines(keepends=True):
        at += len(line)
        if not line.endswith("\n"):
            break  # the last line is still being written
        mark = line.lstrip()[:3]
        if mark in ("```", "~~~"):
            fence = None if fence == mark else fence or mark
        elif fence is None and not line.strip():
            end = at
    return end


class OutputView(QTextEdit):
    """Shows the output as Markdown (code blocks in a monospace font) or as raw text.

    Streamed text costs what it adds, never a render of the whole: appends are gathered for
    FLUSH_MS and inserted at once. As Markdown, the blocks that can no longer change (up to
    the last blank line outside a code fence) are rendered once each, and the paragraph
    being written shows as plain text until it ends. While the view is at the bottom it
    keeps there; scrolled up, it stays put. Nothing is ever loaded: no images, no links.
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
        self._settled = 0  # Markdown: the text up to here is rendered block by block
        self._tail_at: int | None = None  # where the rest (its tail) starts in the document
        self._tail_rendered = False  # the tail is shown rendered (not streaming into it)
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
            self._timer.start(FLUSH_MS)

    def flush(self) -> None:
        """Show what was received now."""
        self._timer.stop()
        if self._shown == len(self._text):
            return
        if self._plain() != self._plain_shown:  # grew past MARKDOWN_MAX: plain from now on
            self._render(keep_place=True)
            return
        follow = self.at_end()
        cursor = QTextCursor(self.document())
        settled = self._settled if self._plain_shown else settled_end(self._text, self._settled)
        if self._plain_shown or (
            settled == self._settled and self._tail_at is not None and not self._tail_rendered
        ):
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(self._text[self._shown :])
        else:  # blocks ended (render them once), or the tail starts or turns plain again
            self._replace_tail(cursor, settled, rendered=False)
        self._shown = len(self._text)
        if follow:
            self.scroll_to_end()

    def finish(self) -> None:
        """The stream ended: the paragraph it ended in is shown rendered too."""
        self.flush()
        if self._plain_shown or self._tail_rendered or self._tail_at is None:
            return
        tail = self._text[self._settled :]
        if looks_plain(tail) or len(tail) > FINISH_RENDER_MAX:
            # Prose looks the same rendered; a paragraph of thousands of characters is rare in
            # Markdown and costs a long layout while other jobs may stream: it is rendered
            # when the job is shown again. Either way the window is spared the work now.
            self._tail_rendered = True
            return
        follow = self.at_end()
        self._replace_tail(QTextCursor(self.document()), self._settled, rendered=True)
        if follow:
            self.scroll_to_end()

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
            self._settled = settled_end(self._text, 0)
            self.document().setMarkdown(self._text[: self._settled], MARKDOWN)
            self._tail_at = None
            if self._settled < len(self._text):
                self._replace_tail(QTextCursor(self.document()), self._settled, rendered=True)
            self.renders += 1
        self._shown = len(self._text)
        if keep_place:
            if follow:
                self.scroll_to_end()
            else:
                bar.setValue(value)

    def _replace_tail(self, cursor: QTextCursor, settled: int, *, rendered: bool) -> None:
        """Render the blocks that ended (up to `settled`) and show the rest after them, as
        Markdown (`rendered`) or as plain text that streamed text is appended to."""
        if self._tail_at is not None:  # its block stays, emptied
            cursor.setPosition(self._tail_at)
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
        else:
            cursor.movePosition(QTextCursor.MoveOperation.End)
            if cursor.position() > 0:
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())  # a plain block
        tail = self._text[settled:]
        if settled > self._settled:
            cursor.insertMarkdown(self._text[self._settled : settled], MARKDOWN)
            self._settled = settled
            if tail:
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        self._tail_at = cursor.position() if tail else None
        if rendered:
            cursor.insertMarkdown(tail, MARKDOWN)
        else:
            cursor.insertText(tail)
        self._tail_rendered = rendered

    def _plain(self) -> bool:
        """Whether the text is shown plain: asked for, or too long to render."""
        return self.raw or len(self._text) > MARKDOWN_MAX

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        """Nothing is fetched for the output: an image in it stays a broken image."""
        return None
