"""Finding GGUF files in each tool's own layout: folders, the Hub cache, Ollama's manifests."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker.library.places import HUGGING_FACE, OLLAMA

SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_REGISTRY = "registry.ollama.ai"
DEEPEST = 6  # folders below a models folder that are looked in (LM Studio nests 2)


@dataclass(frozen=True)
class Found:
    """A model file (the first part of a split model) and where it came from."""

    path: Path
    source: str
    name: str  # how it is shown: the file's stem, or Ollama's name:tag
    origin: str = ""  # more about where: the Hub repository, the folder
    parts: tuple[Path, ...] = field(default=())  # every part of a split model, in order


@dataclass(frozen=True)
class Skipped:
    """A place that looked like a model but cannot be one, and why (shown, never raised)."""

    path: Path
    source: str
    reason: str


Discovery = Iterator[Found | Skipped]


def in_folder(folder: Path, source: str) -> Discovery:
    """The GGUF files in `folder` and below (up to DEEPEST levels; symlinked files followed,
    symlinked folders not), split models as one. Nothing when the folder does not exist."""
    if not folder.exists():
        return
    files: list[Path] = []
    yield from _walk(folder, source, 0, files)
    yield from group_splits(files, source, lambda path: _origin(folder, path))


def _walk(folder: Path, source: str, depth: int, files: list[Path]) -> Discovery:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(folder, source, f"cannot be read ({exc.strerror or exc})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.name.lower().endswith(".gguf"):
            if entry.is_symlink() and not path.exists():
                yield Skipped(path, source, f"a broken link (to {os.readlink(path)})")
            elif entry.is_file():
                files.append(path)
        elif entry.is_dir(follow_symlinks=False) and depth < DEEPEST:
            yield from _walk(path, source, depth + 1, files)


def group_splits(files: list[Path], source: str, origin: object = None) -> Discovery:
    """One Found per model: a plain file, or the parts `-0000k-of-0000n` of a split one
    (a part missing: Skipped, naming it)."""
    splits: dict[tuple[Path, str, int], dict[int, Path]] = {}
    for path in files:
        match = SPLIT.match(path.name)
        if match is None:
            yield Found(path, source, file_stem(path.name), _describe(origin, path))
            continue
        key = (path.parent, match["stem"], int(match["total"]))
        splits.setdefault(key, {})[int(match["part"])] = path
    for (_, stem, total), parts in splits.items():
        first = parts.get(1) or next(iter(parts.values()))
        missing = [n for n in range(1, total + 1) if n not in parts]
        if missing:
            yield Skipped(first, source, f"a split model missing part {missing[0]} of {total}")
            continue
        ordered = tuple(parts[n] for n in range(1, total + 1))
        yield Found(ordered[0], source, stem, _describe(origin, ordered[0]), ordered)


def in_hugging_face_cache(cache: Path) -> Discovery:
    """The GGUF files of the Hub cache's model repositories, through huggingface_hub's own
    cache scan (each revision's snapshot path; a file in several revisions once)."""
    if not cache.is_dir():
        return
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, OSError) as exc:
        yield Skipped(cache, HUGGING_FACE, f"cannot be scanned ({exc})")
        return
    for warning in info.warnings:
        yield Skipped(cache, HUGGING_FACE, str(warning))
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        seen: set[Path] = set()
        files: list[Path] = []
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            for cached in revision.files:
                if cached.file_name.lower().endswith(".gguf") and cached.blob_path not in seen:
                    seen.add(cached.blob_path)
                    files.append(cached.file_path)
        yield from group_splits(files, HUGGING_FACE, repo.repo_id)


def in_ollama(store: Path) -> Discovery:
    """Ollama's models: each manifest (manifests/HOST/NAMESPACE/NAME/TAG) names the blob
    that holds its GGUF file; shown as NAME:TAG (NAMESPACE/NAME:TAG outside the library)."""
    manifests = store / "manifests"
    if not manifests.is_dir():
        return
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) != 4:
            continue
        host, namespace, name, tag = parts
        shown = f"{name}:{tag}" if namespace == "library" else f"{namespace}/{name}:{tag}"
        if host != OLLAMA_REGISTRY:
            shown = f"{host}/{shown}"
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
        except (OSError, ValueError, AttributeError) as exc:
            yield Skipped(manifest, OLLAMA, f"{shown}: the manifest cannot be read ({exc})")
            continue
        digests = [
            str(layer.get("digest", ""))
            for layer in layers
            if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER
        ]
        if not digests:
            yield Skipped(manifest, OLLAMA, f"{shown}: the manifest names no model layer")
            continue
        blob = store / "blobs" / digests[0].replace(":", "-")
        if not blob.is_file():
            yield Skipped(blob, OLLAMA, f"{shown}: its blob {blob.name} is missing")
            continue
        yield Found(blob, OLLAMA, shown, "/".join(parts[:-1]), (blob,))


def file_stem(file_name: str) -> str:
    """'model.gguf' -> 'model' (any case of the suffix)."""
    return file_name[: -len(".gguf")] if file_name.lower().endswith(".gguf") else file_name


def _origin(folder: Path, path: Path) -> str:
    """Where below the models folder (LM Studio's publisher/repository)."""
    parent = path.parent.relative_to(folder)
    return "" if str(parent) == "." else str(parent)


def _describe(origin: object, path: Path) -> str:
    if callable(origin):
        return str(origin(path))
    return "" if origin is None else str(origin)
