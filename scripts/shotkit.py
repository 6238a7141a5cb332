"""What the screenshot scripts share: waiting for the window, saving a widget as a PNG."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    """Let Qt run until `check()` holds; TimeoutError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there")
        QTest.qWait(20)


def save(widget: QWidget, path: Path) -> None:
    QTest.qWait(150)  # let layouts and pending paints settle
    widget.grab().save(str(path))
    print(f"wrote {path} ({widget.width()}x{widget.height()})")
