"""Opening the user's files for reading without ever hanging on one that is not a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegularFile(OSError):
    """The path names something that is not a regular file (a FIFO, a device, a folder)."""


def kind_of(mode: int) -> str:
    """The kind of a file that is not regular, for a message: "a FIFO", "a directory", ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; NotRegularFile for anything else.

    Opened without blocking: a FIFO with no writer (or one that replaced the file after it
    was checked) would otherwise block `open()` forever, and the job or the command with it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path} is {kind_of(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
