"""The library: every model on disk with its facts, read from headers once and kept."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worker.library.discover import (
    Discovery,
    Found,
    Skipped,
    file_stem,
    in_folder,
    in_hugging_face_cache,
    in_ollama,
)
from worker.library.fit import Room, estimate, fit_of
from worker.library.places import (
    DEFAULT,
    FOLDER,
    HUGGING_FACE,
    OLLAMA,
    Place,
    other_tools,
)
from worker.modelfile.info import kv_bytes_per_token, read_model_info
from worker.privatefile import write_private
from worker.settings import Settings

log = logging.getLogger(__name__)

CACHE_FILE = "library-cache.json"
CACHE_VERSION = 2


@dataclass(frozen=True)
class Facts:
    """What a model's header says, as kept in the cache (by path, size and mtime)."""

    architecture: str | None
    parameters: int | None
    quantization: str | None
    context_length: int | None
    chat_template: bool
    kv_per_token: int | None
    tensors: int


@dataclass(frozen=True)
class LibraryModel:
    """One model of the library, as the Models view and `promptspool models` show it."""

    name: str
    path: Path
    source: str
    origin: str
    size: int  # every part of a split model
    parts: int
    facts: Facts
    needs: int  # bytes to run it with the settings' context (weights + KV cache)
    fit: str  # "fits on the GPU", "CPU only" or "too large"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass
class Listing:
    models: list[LibraryModel] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class ModelLibrary:
    """The models of the settings' folders and default model, and those other tools keep
    (Hugging Face's cache, LM Studio, GPT4All, Ollama, llama.cpp's cache).

    A model's facts are read from its header the first time (a few milliseconds) and kept in
    a cache file by path, size and mtime: a library of hundreds of files lists again in a
    fraction of a second. Nothing is ever written to the models' folders.
    """

    def __init__(self, settings: Settings, places: Iterable[Place] | None = None) -> None:
        """`places`: where other tools keep models (default: each tool's own, here)."""
        self.settings = settings
        self.places = list(other_tools() if places is None else places)
        self.cache_path = settings.paths.data / CACHE_FILE
        self._cache: dict[str, Any] | None = None
        self._dirty = False

    def list(self, room: Room | None = None) -> Listing:
        """Every model found now, and every place skipped with its reason."""
        room = room or Room.now()
        listing = Listing()
        seen: set[Path] = set()
        for item in self._discover():
            if isinstance(item, Skipped):
                listing.skipped.append(item)
                continue
            key = _identity(item.path)
            if key in seen:  # the same file through two places (a link, the default model)
                continue
            seen.add(key)
            model = self._model(item, room)
            if isinstance(model, Skipped):
                listing.skipped.append(model)
            else:
                listing.models.append(model)
        self._save_cache()
        return listing

    def _discover(self) -> Discovery:
        settings = self.settings
        if settings.model is not None:
            model = settings.model.expanduser()
            if model.is_file():
                yield Found(model, DEFAULT, file_stem(model.name), str(model.parent), (model,))
            else:
                yield Skipped(model, DEFAULT, "the default model's file is not there")
        for folder in settings.model_dirs:
            yield from in_folder(folder.expanduser(), FOLDER)
        for place in self.places:
            if place.source == HUGGING_FACE:
                yield from in_hugging_face_cache(place.path)
            elif place.source == OLLAMA:
                yield from in_ollama(place.path)
            else:
                yield from in_folder(place.path, place.source)

    def _model(self, found: Found, room: Room) -> LibraryModel | Skipped:
        parts = found.parts or (found.path,)
        try:
            stats = [part.stat() for part in parts]
        except OSError as exc:
            return Skipped(found.path, found.source, f"cannot be read ({exc.strerror or exc})")
        size = sum(stat.st_size for stat in stats)
        facts = self._facts(found.path, stats[0].st_size, stats[0].st_mtime_ns)
        if isinstance(facts, str):
            return Skipped(found.path, found.source, facts)
        if facts.tensors == 0 and len(parts) == 1:
            return Skipped(found.path, found.source, "no weights (a vocabulary file, not a model)")
        needs = estimate(size, facts.kv_per_token, self.settings.n_ctx)
        return LibraryModel(found.name, found.path, found.source, found.origin, size,
                            len(parts), facts, needs, fit_of(needs, room))  # fmt: skip

    # --- the facts cache ----------------------------------------------------------------

    def _facts(self, path: Path, size: int, mtime_ns: int) -> Facts | str:
        """The header's facts (cached), or why it cannot be read."""
        cache = self._load_cache()
        key = str(path)
        kept = cache.get(key)
        if isinstance(kept, dict) and kept.get("size") == size and kept.get("mtime") == mtime_ns:
            if "error" in kept:
                return str(kept["error"])
            try:
                return Facts(**kept["facts"])
            except (TypeError, KeyError):
                pass
        try:
            info = read_model_info(path)
            facts: Facts | str = Facts(
                info.architecture, info.parameters, info.quantization, info.context_length,
                info.chat_template, kv_bytes_per_token(info.path), info.tensor_count,
            )  # fmt: skip
        except ValueError as exc:
            facts = str(exc)
        entry: dict[str, Any] = {"size": size, "mtime": mtime_ns}
        entry.update({"error": facts} if isinstance(facts, str) else {"facts": asdict(facts)})
        cache[key] = entry
        self._dirty = True
        return facts

    def _load_cache(self) -> dict[str, Any]:
        if self._cache is None:
            try:
                data = json.loads(self.cache_path.read_text(encoding="utf-8"))
                good = isinstance(data, dict) and data.get("version") == CACHE_VERSION
                self._cache = dict(data.get("models", {})) if good else {}
            except (OSError, ValueError):
                self._cache = {}
        return self._cache

    def _save_cache(self) -> None:
        if not self._dirty or self._cache is None:
            return
        try:
            write_private(
                self.cache_path, json.dumps({"version": CACHE_VERSION, "models": self._cache})
            )
            self._dirty = False
        except OSError as exc:  # a cache that cannot be kept only costs time next start
            log.warning("the model library's cache cannot be written: %s", exc)


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path
