"""Text from jobs and files made safe to print: no control character reaches a terminal raw.

A title, a file name or an error can hold anything a file or a model put there: a newline
that forges a second line of output, or an ANSI escape that clears the screen or retitles
the terminal. One-line fields have every control character escaped; multi-line text (a
job's output) keeps its line breaks and tabs, and only when it goes to a terminal.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# DEL, the C1 controls, and the Unicode controls that reorder text (bidi overrides) ...
_ALWAYS = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# ... with every C0 control in a one-line field, or all but tab and line feed in text.
_IN_LINE = re.compile(f"[\x00-\x1f{_ALWAYS}]")
_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f{_ALWAYS}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def one_line(value: object) -> str:
    """A field for one line of output, every control character escaped (`\\n`, `\\x1b`, ...)."""
    return _IN_LINE.sub(_escape, str(value))


def text_for(stream: TextIO, text: str) -> str:
    """Multi-line text for `stream`: to a terminal with its controls escaped (line breaks and
    tabs kept), to a file or a pipe exactly as it is."""
    isatty = getattr(stream, "isatty", None)
    return _IN_TEXT.sub(_escape, text) if isatty is not None and isatty() else text


def say(message: str) -> None:
    """One line on stderr (the message's fields already passed through `one_line`)."""
    print(message, file=sys.stderr, flush=True)
