"""Token bytes to text: UTF-8-safe incremental decoding and stop-string hold-back."""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextAssembler:
    """Turns token pieces into text that never splits a character or leaks a stop string.

    Bytes are decoded incrementally, so a character split across tokens appears once it
    is whole. Text that could still become the start of a stop string is held back until
    it cannot; when a stop string completes, everything before it is released and
    `stopped` becomes true.
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._pending = ""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is now safe to show."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(piece)
        if not self._stop:
            text, self._pending = self._pending, ""
            return text
        cut = min((i for i in (self._pending.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            text, self._pending = self._pending[:cut], ""
            return text
        keep = self._held_suffix()
        text = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep :]
        return text

    def finish(self) -> str:
        """The rest of the text at the end of generation (held text, a dangling byte)."""
        if self.stopped:
            return ""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return text

    def _held_suffix(self) -> int:
        """Length of the longest tail of pending text that begins some stop string."""
        pending = self._pending
        for size in range(min(self._hold, len(pending)), 0, -1):
            tail = pending[-size:]
            if any(s.startswith(tail) for s in self._stop):
                return size
        return 0
