"""The models a program may name: the default model and the GGUF files in the model folders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SPLIT_MARK = "-00001-of-"


class UnknownModel(LookupError):
    """A model name that is neither a known model nor a GGUF file; says which ones exist."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        names = sorted(known)
        listed = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
        hint = f"known models: {listed}" if names else "no models are configured"
        super().__init__(f"model {name!r} does not exist ({hint})")
        self.name = name


@dataclass(frozen=True)
class CatalogEntry:
    """One model: the name programs use for it, its file, and when that file changed."""

    name: str
    path: Path
    modified: float


def model_name(path: Path) -> str:
    """'…/Qwen2.5-0.5B-Q4_K_M.gguf' -> 'Qwen2.5-0.5B-Q4_K_M'; a split model by its first part."""
    stem = path.name.removesuffix(".gguf")
    head, mark, _ = stem.partition(SPLIT_MARK)
    return head if mark else stem


def list_models(default: Path | None, folders: Iterable[Path]) -> list[CatalogEntry]:
    """The default model first, then each folder's GGUF files by name (the first of a name
    wins; the later parts of a split model are not models of their own). A folder that
    cannot be read is skipped."""
    entries: dict[str, CatalogEntry] = {}

    def add(path: Path) -> None:
        try:
            stat = path.stat()
        except OSError:
            return
        name = model_name(path)
        if name not in entries and path.is_file():
            entries[name] = CatalogEntry(name, path, stat.st_mtime)

    if default is not None:
        add(default.expanduser())
    for folder in folders:
        try:
            names = sorted(os.listdir(folder.expanduser()))
        except OSError:
            continue
        for file_name in names:
            split = "-of-" in file_name and SPLIT_MARK not in file_name
            if file_name.endswith(".gguf") and not split:
                add(folder.expanduser() / file_name)
    return list(entries.values())


def resolve_model(name: str, default: Path | None, folders: Iterable[Path]) -> Path:
    """The file a request's model names: a catalog name, 'default' (or empty) for the default
    model, or a GGUF file's path; UnknownModel otherwise."""
    folders = list(folders)
    if name in ("", "default"):
        if default is None:
            raise UnknownModel(name or "default", [e.name for e in list_models(None, folders)])
        return default.expanduser()
    for entry in list_models(default, folders):
        if entry.name == name:
            return entry.path
    candidate = Path(name).expanduser()
    if candidate.suffix == ".gguf" and candidate.is_absolute() and candidate.is_file():
        return candidate
    raise UnknownModel(name, [e.name for e in list_models(default, folders)])
