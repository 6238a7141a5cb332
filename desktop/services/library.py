"""The model library for the window: listed off the GUI thread, kept for the session, shared."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QObject, Signal

from desktop.services.librarymarks import LibraryMarks
from desktop.services.offthread import run_off_thread
from worker.library.fit import CPU_ONLY, FITS_GPU, TOO_LARGE, Room
from worker.library.listing import LibraryModel, Listing, ModelLibrary
from worker.library.places import Place
from worker.settings import Settings

FIT_ORDER = {FITS_GPU: 0, CPU_ONLY: 1, TOO_LARGE: 2}


def best_first(models: Iterable[LibraryModel]) -> list[LibraryModel]:
    """Those that fit first (the GPU before the CPU), chat models before the others."""
    return sorted(
        models,
        key=lambda m: (FIT_ORDER.get(m.fit, 3), not m.facts.chat_template, m.name.lower()),
    )


class LibraryService(QObject):
    """One ModelLibrary for the window: the Models view, the picker and the first-run screen
    read its last listing (`listing`, hidden models left out) and hear `listed` when a new
    one arrives. Listing runs on a short-lived thread; a refresh asked for meanwhile runs
    once the current one ends."""

    scanning = Signal()
    listed = Signal(object)  # Listing (the models shown: hidden ones left out)
    failed = Signal(str)

    # Where other tools keep models; None: each tool's own (tests set [] to keep them out).
    default_places: ClassVar[list[Place] | None] = None

    def __init__(
        self,
        settings: Settings,
        places: Iterable[Place] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        chosen = places if places is not None else type(self).default_places
        self.places = None if chosen is None else list(chosen)
        self.marks = LibraryMarks(settings.paths.data)
        self.complete: Listing | None = None  # everything found, hidden models too
        self.error: str | None = None
        self.busy = False
        self.room: Room | None = None  # the memory fits are judged against (None: free now)
        self._again = False
        self._library = ModelLibrary(settings, self.places)

    @property
    def listing(self) -> Listing | None:
        """The last listing without the hidden models; None before the first one."""
        if self.complete is None:
            return None
        shown = [m for m in self.complete.models if not self.marks.is_hidden(m.path)]
        return Listing(shown, list(self.complete.skipped))

    def models(self) -> list[LibraryModel]:
        listing = self.listing
        return listing.models if listing is not None else []

    def find(self, path: str | Path) -> LibraryModel | None:
        key = str(path)
        return next((m for m in self.models() if str(m.path) == key), None)

    def ensure(self) -> None:
        """List once per session (the first caller starts it)."""
        if self.complete is None and not self.busy:
            self.refresh()

    def refresh(self) -> None:
        """List the library again, off the GUI thread."""
        if self.busy:
            self._again = True
            return
        self.busy = True
        self.scanning.emit()
        library, room = self._library, self.room
        run_off_thread(self, lambda: library.list(room), self._done)

    def _done(self, listing: Listing | None, error: BaseException | None) -> None:
        self.busy = False
        if error is not None:
            self.error = str(error) or type(error).__name__
            self.failed.emit(self.error)
        elif listing is not None:
            self.error = None
            self.complete = listing
            self.listed.emit(self.listing)
        if self._again:
            self._again = False
            self.refresh()

    def set_settings(self, settings: Settings) -> None:
        """New settings: listed again when what the library depends on changed."""
        before = self.settings
        self.settings = settings
        same = (before.model, before.model_dirs, before.n_ctx, before.home) == (
            settings.model,
            settings.model_dirs,
            settings.n_ctx,
            settings.home,
        )
        if same:
            return
        self._library = ModelLibrary(settings, self.places)
        if self.complete is not None or self.busy:
            self.refresh()

    # --- marks ------------------------------------------------------------------------

    def hide(self, path: Path) -> None:
        """Leave it out of the lists from now on (the file stays)."""
        self.marks.hide(path)
        if self.complete is not None:
            self.listed.emit(self.listing)

    def was_downloaded(self, path: Path) -> bool:
        return self.marks.was_downloaded(path)

    def downloaded(self, path: Path) -> None:
        """PromptSpool fetched this file: it may delete it; list again to show it."""
        self.marks.mark_downloaded(path)
        self.refresh()
