"""The library's marks in the data dir: models hidden from the lists, files PromptSpool fetched."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from worker.privatefile import write_private

log = logging.getLogger(__name__)

MARKS_FILE = "library-marks.json"


def _keys(path: Path | str) -> set[str]:
    """A path as listed, and the file it leads to (a Hub snapshot link leads to its blob)."""
    path = Path(path).expanduser()
    keys = {str(path.absolute())}
    with contextlib.suppress(OSError):
        keys.add(str(path.resolve()))
    return keys


class LibraryMarks:
    """A small JSON file: `hidden` paths (left out of the Models view and the picker; the
    files stay) and `downloaded` paths (fetched by PromptSpool: the only files it offers to
    delete). Read once; written atomically on each change."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / MARKS_FILE
        self.hidden: set[str] = set()
        self.downloaded: set[str] = set()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self.hidden = {str(p) for p in data.get("hidden", []) if isinstance(p, str)}
            self.downloaded = {str(p) for p in data.get("downloaded", []) if isinstance(p, str)}

    def is_hidden(self, path: Path | str) -> bool:
        return bool(_keys(path) & self.hidden)

    def was_downloaded(self, path: Path | str) -> bool:
        return bool(_keys(path) & self.downloaded)

    def hide(self, path: Path | str) -> None:
        self.hidden |= _keys(path)
        self._save()

    def show(self, path: Path | str) -> None:
        """Listed again (a download of a hidden file brings it back)."""
        self.hidden -= _keys(path)
        self._save()

    def mark_downloaded(self, path: Path | str) -> None:
        self.downloaded |= _keys(path)
        self.hidden -= _keys(path)
        self._save()

    def forget(self, path: Path | str) -> None:
        """The file is gone (deleted): no marks left for it."""
        self.hidden -= _keys(path)
        self.downloaded -= _keys(path)
        self._save()

    def _save(self) -> None:
        data = {"hidden": sorted(self.hidden), "downloaded": sorted(self.downloaded)}
        try:
            write_private(self.path, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot keep the library's marks in %s: %s", self.path, exc)


def delete_downloaded(path: Path) -> list[Path]:
    """Delete a downloaded model's file (a Hub cache's snapshot link and its blob too); the
    paths removed. OSError when it cannot be."""
    removed: list[Path] = []
    target = path.resolve()
    if path.is_symlink():
        path.unlink()
        removed.append(path)
    if target.exists():
        target.unlink()
        removed.append(target)
    return removed
