"""The Hugging Face Hub for the window: search, a repo's GGUF files, one download on a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Qt, Signal

from worker.library.hubtypes import Progress, RemoteFile, RepoHit


class Hub(Protocol):
    """What the Download section needs of the Hub (blocking calls: run them off the GUI
    thread). Errors carry a message fit to show as it is."""

    def search(self, query: str) -> list[RepoHit]: ...

    def files(self, repo_id: str) -> list[RemoteFile]: ...

    def download(
        self,
        repo_id: str,
        filename: str,
        to: Path | None,
        progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> Path: ...


class Download(QObject):
    """One download on its own thread. `progressed` and `finished` are emitted from that
    thread and reach the GUI thread queued; `finished` carries the file, or None and the
    error's text ("" when cancelled)."""

    progressed = Signal(object)  # Progress
    finished = Signal(object, str)  # Path | None, error text

    def __init__(
        self, hub: Hub, repo_id: str, filename: str, to: Path | None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.hub = hub
        self.repo_id = repo_id
        self.filename = filename
        self.to = to
        self.cancel_event = threading.Event()
        self.running = False
        self.last: Progress | None = None
        self.progressed.connect(self._keep, Qt.ConnectionType.QueuedConnection)

    def _keep(self, progress: Progress) -> None:
        self.last = progress

    def connect_gui(
        self,
        on_progress: Callable[[Progress], None],
        on_finished: Callable[[Path | None, str], None],
    ) -> None:
        """Connect the GUI's slots, queued: they run on the GUI thread."""
        self.progressed.connect(on_progress, Qt.ConnectionType.QueuedConnection)
        self.finished.connect(on_finished, Qt.ConnectionType.QueuedConnection)

    def start(self) -> None:
        self.running = True
        threading.Thread(target=self._run, name="promptspool-download", daemon=True).start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def _run(self) -> None:
        path: Path | None = None
        error = ""
        try:
            path = self.hub.download(
                self.repo_id, self.filename, self.to, self.progressed.emit, self.cancel_event
            )
        except Exception as exc:
            error = "" if self.cancel_event.is_set() else (str(exc) or type(exc).__name__)
        self.running = False
        with contextlib.suppress(RuntimeError):  # the window is gone
            self.finished.emit(path, error)


class RealHub:
    """The Hub through worker.library.hub (HF_ENDPOINT, HF_TOKEN and HF_HUB_CACHE as
    huggingface_hub reads them); imported on the first call."""

    def search(self, query: str) -> list[RepoHit]:
        from worker.library.hub import search_gguf

        return search_gguf(query, 30)

    def files(self, repo_id: str) -> list[RemoteFile]:
        from worker.library.hub import repo_gguf_files

        return repo_gguf_files(repo_id)

    def download(
        self,
        repo_id: str,
        filename: str,
        to: Path | None,
        progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> Path:
        from worker.library.hub import download

        return download(repo_id, filename, to=to, progress=progress, cancel=cancel)
