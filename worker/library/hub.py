"""GGUF models from the Hugging Face Hub: search, list a repo's files, download with resume."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    get_session,
    hf_hub_download,
    hf_hub_url,
    hf_raise_for_status,
    try_to_load_from_cache,
)
from huggingface_hub._local_folder import (
    get_local_download_paths,
    read_download_metadata,
    write_download_metadata,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import ModelInfo

# Documented as huggingface_hub.utils.*; imported from where mypy sees them exported.
from huggingface_hub.utils._fixes import WeakFileLock
from huggingface_hub.utils._headers import build_hf_headers

from worker.library.hubanswers import (
    ChecksumMismatch,
    DestinationNotWritable,
    DiskFull,
    DownloadCancelled,
    HubAccessDenied,
    HubError,
    HubNotFound,
    HubUnreachable,
    disk_error,
    hub_errors,
    make_folder,
)
from worker.library.hubtypes import Progress, RemoteFile, RemotePart, RepoHit
from worker.library.transfer import Meter, Remote, transfer

__all__ = [
    "ChecksumMismatch",
    "DestinationNotWritable",
    "DiskFull",
    "DownloadCancelled",
    "HubAccessDenied",
    "HubError",
    "HubNotFound",
    "HubUnreachable",
    "Progress",
    "RemoteFile",
    "RemotePart",
    "RepoHit",
    "cached_path",
    "download",
    "quantization_of",
    "repo_gguf_files",
    "search_gguf",
    "split_parts",
]

SPLIT = re.compile(r"^(?P<head>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")

QUANT = re.compile(
    r"(?:I?Q\d(?:_[0-9A-Z]+)*|TQ\d_\d|BF16|FP?16|FP?32|MXFP4(?:_MOE)?)", re.IGNORECASE
)


def search_gguf(query: str, limit: int = 20) -> list[RepoHit]:
    """GGUF model repositories whose name matches `query`, most downloaded first.

    The same request as `HfApi.list_models(filter="gguf", search=..., sort="downloads")`,
    sent once: list_models retries an unreachable Hub for about 23 s before it gives up.
    """
    endpoint = constants.ENDPOINT
    params: dict[str, Any] = {
        "filter": "gguf",
        "sort": "downloads",
        "limit": limit,
        "expand": ["downloads", "likes", "lastModified", "gated"],
    }
    if query.strip():
        params["search"] = query.strip()
    with hub_errors(endpoint, what=f"searching for {query!r}"):
        response = get_session().get(
            f"{endpoint}/api/models",
            params=params,
            headers=build_hf_headers(),
            timeout=constants.HF_HUB_ETAG_TIMEOUT,
        )
        hf_raise_for_status(response)
        models = [ModelInfo(**item) for item in response.json()]  # type: ignore[no-untyped-call]
    hits = [
        RepoHit(m.id, m.downloads or 0, m.likes or 0, m.last_modified, bool(m.gated))
        for m in models
    ]
    return sorted(hits, key=lambda h: h.downloads, reverse=True)[:limit]


def quantization_of(filename: str) -> str | None:
    """The quantization a GGUF file's name announces: 'Q4_K_M', 'IQ3_XXS', 'F16', 'UD-Q4_K_XL'."""
    stem = Path(filename).name.removesuffix(".gguf")
    if match := SPLIT.match(Path(filename).name):
        stem = match["head"]
    words = re.split(r"[-.]", stem)
    for i in range(len(words) - 1, -1, -1):
        if QUANT.fullmatch(words[i]):
            name = words[i].upper()
            name = {"FP16": "F16", "FP32": "F32"}.get(name, name)
            return f"UD-{name}" if i > 0 and words[i - 1].upper() == "UD" else name
    return None


def split_parts(filename: str) -> list[str]:
    """All the parts of the split model `filename` belongs to; [filename] if it is whole."""
    match = SPLIT.match(filename.rsplit("/", 1)[-1])
    if not match:
        return [filename]
    folder = filename[: len(filename) - len(filename.rsplit("/", 1)[-1])]
    count = int(match["count"])
    return [
        f"{folder}{match['head']}-{i:05d}-of-{match['count']}.gguf" for i in range(1, count + 1)
    ]


def repo_gguf_files(repo_id: str, revision: str | None = None) -> list[RemoteFile]:
    """The repository's GGUF models by name, a split model as one entry with all its parts."""
    endpoint = constants.ENDPOINT
    with hub_errors(endpoint, what=repo_id):
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, files_metadata=True)
    groups: dict[str, list[RemotePart]] = {}
    for sibling in info.siblings or []:
        if not sibling.rfilename.lower().endswith(".gguf"):
            continue
        lfs = sibling.lfs
        part = RemotePart(
            sibling.rfilename,
            lfs.size if lfs is not None else sibling.size,
            lfs.sha256 if lfs is not None else None,
        )
        groups.setdefault(split_parts(sibling.rfilename)[0], []).append(part)
    files = []
    for first, parts in sorted(groups.items()):
        parts.sort(key=lambda p: p.filename)
        sizes = [p.size for p in parts]
        total = None if None in sizes else sum(s for s in sizes if s is not None)
        files.append(RemoteFile(first, total, quantization_of(first), tuple(parts)))
    return files


def cached_path(
    repo_id: str, filename: str, *, revision: str | None = None, to: Path | None = None
) -> Path | None:
    """Where a completed download of `filename` is (the first part of a split model, when every
    part is there), in the Hugging Face cache or in folder `to`; None if it is not complete."""
    paths: list[Path] = []
    for name in split_parts(filename):
        if to is not None:
            target = Path(to) / name
            if not target.is_file() or read_download_metadata(Path(to), name) is None:
                return None
            paths.append(target)
            continue
        found = try_to_load_from_cache(
            repo_id, name, cache_dir=constants.HF_HUB_CACHE, revision=revision
        )
        if not isinstance(found, str):
            return None
        paths.append(Path(found))
    return paths[0]


def download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    to: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Download `filename` (every part, for a split model) and return its path (the first part).

    Into the Hugging Face cache (HF_HUB_CACHE, shared with other tools) unless `to` names a
    folder. A partial file left by a dropped connection, a crash or `cancel` is resumed by
    the next call; each file is checked against the sha256 the Hub announces.
    """
    endpoint = constants.ENDPOINT
    cancel = cancel or threading.Event()
    names = split_parts(filename)
    try:
        first = _metadata(repo_id, names[0], revision or constants.DEFAULT_REVISION, endpoint)
    except HubUnreachable:
        # Offline, but already downloaded: as hf_hub_download does, use the local copy.
        if (found := cached_path(repo_id, filename, revision=revision, to=to)) is not None:
            return found
        raise
    # The other parts from the same commit as the first.
    remotes = [first, *(_metadata(repo_id, n, first.commit, endpoint) for n in names[1:])]
    sizes = [r.size for r in remotes]
    meter = Meter(None if None in sizes else sum(s for s in sizes if s is not None), progress)
    paths = [
        _download_one(repo_id, remote, revision, to, meter, cancel, endpoint) for remote in remotes
    ]
    meter.finish()
    return paths[0]


def _metadata(repo_id: str, filename: str, revision: str, endpoint: str) -> Remote:
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    headers = build_hf_headers()
    with hub_errors(endpoint, what=f"{repo_id}/{filename}"):
        meta = get_hf_file_metadata(url, headers=headers, endpoint=endpoint)
    if meta.commit_hash is None or meta.etag is None:
        raise HubUnreachable(
            f"{endpoint} answered for {repo_id}/{filename} without a commit or ETag: is"
            " HF_ENDPOINT a Hugging Face Hub? The local model library still works."
        )
    location = meta.location or url
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays home
    return Remote(filename, location, meta.commit_hash, meta.etag, meta.size, headers)


def _download_one(
    repo_id: str,
    remote: Remote,
    revision: str | None,
    to: Path | None,
    meter: Meter,
    cancel: threading.Event,
    endpoint: str,
) -> Path:
    if to is not None:
        return _download_to_folder(Path(to), remote, meter, cancel)
    cache = Path(constants.HF_HUB_CACHE).expanduser()
    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    storage = cache / folder
    pointer = storage / "snapshots" / remote.commit / remote.filename
    blob = storage / "blobs" / remote.etag
    if not pointer.is_file():
        if not blob.is_file():
            lock = cache / ".locks" / folder / f"{remote.etag}.lock"
            make_folder(lock.parent)
            with WeakFileLock(lock):
                if not blob.is_file():
                    # A fixed name, unlike hf_hub_download's per-process one, so that the
                    # next call resumes it.
                    partial = blob.with_name(f"{remote.etag}.incomplete")
                    transfer(remote, partial, blob, meter, cancel)
        # The blob is in place: huggingface_hub makes the snapshot's link to it.
        with hub_errors(endpoint, what=f"{repo_id}/{remote.filename}"):
            hf_hub_download(repo_id, remote.filename, revision=remote.commit, cache_dir=str(cache))
    if remote.size is not None and not meter.counted(remote.filename):
        meter.skip(remote.size, remote.filename)
    rev = revision or constants.DEFAULT_REVISION
    if rev != remote.commit:
        ref = storage / "refs" / rev
        if not ref.is_file() or ref.read_text() != remote.commit:
            make_folder(ref.parent)
            ref.write_text(remote.commit)
    return pointer


def _download_to_folder(to: Path, remote: Remote, meter: Meter, cancel: threading.Event) -> Path:
    make_folder(to)
    try:
        paths = get_local_download_paths(to, remote.filename)
    except OSError as error:
        raise disk_error(to, error) from error
    known = read_download_metadata(to, remote.filename)
    if not (paths.file_path.is_file() and known is not None and known.etag == remote.etag):
        with WeakFileLock(paths.lock_path):
            partial = paths.incomplete_path(remote.etag)
            paths.file_path.unlink(missing_ok=True)
            transfer(remote, partial, paths.file_path, meter, cancel)
        write_download_metadata(to, remote.filename, remote.commit, remote.etag)
    if remote.size is not None and not meter.counted(remote.filename):
        meter.skip(remote.size, remote.filename)
    return paths.file_path
