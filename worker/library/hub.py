"""GGUF models from the Hugging Face Hub: search, list a repo's files, download with resume."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
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
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import ModelInfo

# Documented as huggingface_hub.utils.*; imported from where mypy sees them exported.
from huggingface_hub.utils._fixes import WeakFileLock
from huggingface_hub.utils._headers import build_hf_headers

SPLIT = re.compile(r"^(?P<head>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
QUANT = re.compile(
    r"(?:I?Q\d(?:_[0-9A-Z]+)*|TQ\d_\d|BF16|FP?16|FP?32|MXFP4(?:_MOE)?)", re.IGNORECASE
)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
RETRIES = 5  # reconnections after a dropped transfer, each after progress resets the count
POLL_S = 0.1  # how often a waiting download looks at its cancel event
PROGRESS_EVERY_S = 0.1
SPEED_WINDOW_S = 2.0  # the time constant of the smoothed speed


class HubError(RuntimeError):
    """Anything that went wrong talking to the Hub or saving what it sent."""


class HubUnreachable(HubError):
    """No network, a wrong HF_ENDPOINT, the Hub down, or offline mode."""


class HubNotFound(HubError):
    """The repository, revision or file does not exist (404)."""


class HubAccessDenied(HubError):
    """A gated or private repository without a token that may read it (401/403)."""


class DiskFull(HubError):
    """Not enough room for the download."""


class DestinationNotWritable(HubError):
    """The cache or target folder cannot be written."""


class ChecksumMismatch(HubError):
    """The downloaded bytes do not hash to the digest the Hub announced; the file is removed."""

    def __init__(self, filename: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{filename}: checksum mismatch (expected {expected}, got {actual});"
            " the download was removed, try again"
        )
        self.filename, self.expected, self.actual = filename, expected, actual


class DownloadCancelled(HubError):
    """The cancel event was set; the partial file stays, and the next download resumes it."""


@dataclass(frozen=True)
class RepoHit:
    """One model repository found by a search."""

    id: str
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool


@dataclass(frozen=True)
class RemotePart:
    """One file on the Hub: its name, size and sha256 (from its LFS metadata)."""

    filename: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class RemoteFile:
    """A GGUF model in a repository: one file, or all the parts of a split model."""

    filename: str  # the name to download: the file, or the first part of a split model
    size: int | None  # all parts together
    quantization: str | None
    parts: tuple[RemotePart, ...]

    @property
    def split(self) -> bool:
        return len(self.parts) > 1

    @property
    def sha256(self) -> str | None:
        return self.parts[0].sha256 if len(self.parts) == 1 else None


@dataclass(frozen=True)
class Progress:
    """Where a download stands: bytes done of total (all parts), smoothed speed, ETA."""

    filename: str  # the file (part) being transferred
    done: int
    total: int | None
    speed: float  # bytes per second, smoothed
    eta: float | None  # seconds

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None


# -- search and listing -------------------------------------------------------------------


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
    with _hub_errors(endpoint, what=f"searching for {query!r}"):
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
    with _hub_errors(endpoint, what=repo_id):
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


# -- what is on disk ----------------------------------------------------------------------


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


# -- download ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Remote:
    filename: str
    url: str
    commit: str
    etag: str
    size: int | None
    headers: dict[str, str]


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
    meter = _Meter(None if None in sizes else sum(s for s in sizes if s is not None), progress)
    paths = [
        _download_one(repo_id, remote, revision, to, meter, cancel, endpoint) for remote in remotes
    ]
    meter.finish()
    return paths[0]


def _metadata(repo_id: str, filename: str, revision: str, endpoint: str) -> _Remote:
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    headers = build_hf_headers()
    with _hub_errors(endpoint, what=f"{repo_id}/{filename}"):
        meta = get_hf_file_metadata(url, headers=headers, endpoint=endpoint)
    if meta.commit_hash is None or meta.etag is None:
        raise HubUnreachable(
            f"{endpoint} answered for {repo_id}/{filename} without a commit or ETag: is"
            " HF_ENDPOINT a Hugging Face Hub? The local model library still works."
        )
    location = meta.location or url
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays home
    return _Remote(filename, location, meta.commit_hash, meta.etag, meta.size, headers)


def _download_one(
    repo_id: str,
    remote: _Remote,
    revision: str | None,
    to: Path | None,
    meter: _Meter,
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
            _make_folder(lock.parent)
            with WeakFileLock(lock):
                if not blob.is_file():
                    # A fixed name, unlike hf_hub_download's per-process one, so that the
                    # next call resumes it.
                    partial = blob.with_name(f"{remote.etag}.incomplete")
                    _transfer(remote, partial, blob, meter, cancel)
        # The blob is in place: huggingface_hub makes the snapshot's link to it.
        with _hub_errors(endpoint, what=f"{repo_id}/{remote.filename}"):
            hf_hub_download(repo_id, remote.filename, revision=remote.commit, cache_dir=str(cache))
    if remote.size is not None and not meter.counted(remote.filename):
        meter.skip(remote.size, remote.filename)
    rev = revision or constants.DEFAULT_REVISION
    if rev != remote.commit:
        ref = storage / "refs" / rev
        if not ref.is_file() or ref.read_text() != remote.commit:
            _make_folder(ref.parent)
            ref.write_text(remote.commit)
    return pointer


def _download_to_folder(to: Path, remote: _Remote, meter: _Meter, cancel: threading.Event) -> Path:
    _make_folder(to)
    try:
        paths = get_local_download_paths(to, remote.filename)
    except OSError as error:
        raise _disk_error(to, error) from error
    known = read_download_metadata(to, remote.filename)
    if not (paths.file_path.is_file() and known is not None and known.etag == remote.etag):
        with WeakFileLock(paths.lock_path):
            partial = paths.incomplete_path(remote.etag)
            paths.file_path.unlink(missing_ok=True)
            _transfer(remote, partial, paths.file_path, meter, cancel)
        write_download_metadata(to, remote.filename, remote.commit, remote.etag)
    if remote.size is not None and not meter.counted(remote.filename):
        meter.skip(remote.size, remote.filename)
    return paths.file_path


def _transfer(
    remote: _Remote, partial: Path, final: Path, meter: _Meter, cancel: threading.Event
) -> None:
    """Fetch the rest of `partial` from the Hub, check its digest, move it to `final`."""
    _make_folder(partial.parent)
    expected = remote.size
    have, digest = _resume(remote, partial, cancel)
    if expected is not None:
        free = _free_bytes(partial.parent)
        if expected - have > free:
            raise DiskFull(
                f"{remote.filename} needs {_size(expected - have)} more but {partial.parent}"
                f" has {_size(free)} free"
            )
    meter.start(remote.filename, have)
    failures = 0
    try:
        with partial.open("ab") as out:
            while expected is None or have < expected:
                try:
                    for offset, chunk in _stream(remote, have, cancel):
                        if offset == 0 and have:  # the server ignored Range: start over
                            out.seek(0)
                            out.truncate()
                            digest = _Digest(remote.etag, expected)
                            meter.restart()
                            have = 0
                        out.write(chunk)
                        digest.update(chunk)
                        have += len(chunk)
                        failures = 0
                        meter.add(len(chunk))
                    if expected is None:
                        expected = have
                except (httpx2.TransportError, _Dropped) as error:
                    failures += 1
                    if failures > RETRIES:
                        raise HubUnreachable(
                            f"lost the connection to {constants.ENDPOINT} while downloading"
                            f" {remote.filename} ({error}); {_size(have)} are kept and the next"
                            " download resumes from there. The local model library still works."
                        ) from error
                    if cancel.wait(0.0 if failures == 1 else min(2.0 ** (failures - 2), 8.0)):
                        raise DownloadCancelled(f"{remote.filename}: download cancelled") from None
    except OSError as error:
        raise _disk_error(partial.parent, error) from error
    if have != expected:
        raise HubError(f"{remote.filename}: got {have} bytes, expected {expected}")
    actual = digest.hexdigest()
    if actual is not None and actual != remote.etag:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(remote.filename, remote.etag, actual)
    try:
        os.replace(partial, final)
    except OSError as error:
        raise _disk_error(final.parent, error) from error


def _resume(remote: _Remote, partial: Path, cancel: threading.Event) -> tuple[int, _Digest]:
    """The bytes a partial file already has, and the digest of those bytes."""
    have = partial.stat().st_size if partial.is_file() else 0
    if remote.size is not None and have > remote.size:
        partial.unlink()
        have = 0
    digest = _Digest(remote.etag, remote.size)
    if have:
        with partial.open("rb") as existing:
            while block := existing.read(1 << 20):
                if cancel.is_set():
                    raise DownloadCancelled(f"{remote.filename}: download cancelled")
                digest.update(block)
    return have, digest


class _Dropped(Exception):
    """The connection closed before the whole body arrived."""


def _stream(remote: _Remote, offset: int, cancel: threading.Event) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) chunks from `offset` on, read in a thread so a cancel lands at once."""
    items: queue.Queue[tuple[int, bytes] | BaseException | None] = queue.Queue(maxsize=16)
    stop = threading.Event()

    def put(item: tuple[int, bytes] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        headers = dict(remote.headers)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with get_session().stream(
                "GET",
                remote.url,
                headers=headers,
                timeout=httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT),
            ) as response:
                hf_raise_for_status(response)
                at = offset if response.status_code == 206 else 0
                for chunk in response.iter_bytes():
                    if not chunk:
                        continue
                    if not put((at, chunk)):
                        return
                    at += len(chunk)
            put(None)
        except BaseException as error:
            put(error)

    reader = threading.Thread(target=read, name=f"hub-{remote.filename}", daemon=True)
    reader.start()
    try:
        while True:
            if cancel.is_set():
                raise DownloadCancelled(f"{remote.filename}: download cancelled")
            try:
                item = items.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, httpx2.RemoteProtocolError):
                raise _Dropped(str(item)) from item
            if isinstance(item, httpx2.TransportError | HubError):
                raise item  # a TransportError is retried
            if isinstance(item, BaseException):
                mapped = _map_error(item, constants.ENDPOINT, remote.filename)
                raise item if mapped is None else mapped
            yield item
    finally:
        stop.set()  # the reader closes its response at its next chunk


class _Digest:
    """sha256 for an LFS file, git's blob sha1 for a small one (the two kinds of Hub ETag)."""

    def __init__(self, etag: str, size: int | None) -> None:
        self.hash: Any = None
        if SHA256.match(etag):
            self.hash = hashlib.sha256()
        elif GIT_SHA1.match(etag) and size is not None:
            self.hash = hashlib.sha1(f"blob {size}\0".encode())

    def update(self, data: bytes) -> None:
        if self.hash is not None:
            self.hash.update(data)

    def hexdigest(self) -> str | None:
        return None if self.hash is None else str(self.hash.hexdigest())


class _Meter:
    """Adds up the bytes of all parts; reports them with a smoothed speed, a few times a second."""

    def __init__(self, total: int | None, report: Callable[[Progress], None] | None) -> None:
        self.total, self.report = total, report
        self.done = 0
        self.file_start = 0
        self.filename = ""
        self.speed = 0.0
        self.seen: set[str] = set()
        self.last_sample: tuple[float, int] | None = None
        self.last_report = -math.inf
        self.transferred = 0  # bytes that came over the network (the speed counts only those)

    def counted(self, filename: str) -> bool:
        return filename in self.seen

    def start(self, filename: str, resumed: int) -> None:
        self.filename = filename
        self.seen.add(filename)
        self.file_start = self.done
        self.done += resumed
        self._emit(force=True)

    def skip(self, size: int, filename: str | None = None) -> None:
        if filename is not None:
            self.filename = filename
            self.seen.add(filename)
        self.done += size
        if size:
            self._emit(force=True)

    def restart(self) -> None:
        """The server ignored a Range header: this file starts again from its first byte."""
        self.done = self.file_start

    def add(self, count: int) -> None:
        self.done += count
        self.transferred += count
        self._emit()

    def finish(self) -> None:
        self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.last_sample is None:
            self.last_sample = (now, self.transferred)
        else:
            then, before = self.last_sample
            elapsed = now - then
            if elapsed >= PROGRESS_EVERY_S:
                rate = (self.transferred - before) / elapsed
                weight = 1 - math.exp(-elapsed / SPEED_WINDOW_S)
                self.speed = rate if self.speed == 0 else self.speed + weight * (rate - self.speed)
                self.last_sample = (now, self.transferred)
        if self.report is None or (not force and now - self.last_report < PROGRESS_EVERY_S):
            return
        self.last_report = now
        left = None if self.total is None else max(self.total - self.done, 0)
        eta = left / self.speed if left is not None and self.speed > 0 else None
        self.report(Progress(self.filename, self.done, self.total, self.speed, eta))


# -- errors -----------------------------------------------------------------------------------


@contextmanager
def _hub_errors(endpoint: str, what: str) -> Iterator[None]:
    """Turns huggingface_hub's and httpx's errors into HubErrors that say what to do."""
    try:
        yield
    except HubError:
        raise
    except Exception as error:
        mapped = _map_error(error, endpoint, what)
        if mapped is None:
            raise
        raise mapped from error


def _map_error(error: BaseException, endpoint: str, what: str) -> HubError | None:
    unreachable = (
        f"Cannot reach the Hugging Face Hub at {endpoint} ({{}}). Check the network (or"
        " HF_ENDPOINT); the local model library still works."
    )
    if isinstance(error, OfflineModeIsEnabled):
        return HubUnreachable(unreachable.format("HF_HUB_OFFLINE is set"))
    if isinstance(error, GatedRepoError):
        repo = getattr(error, "repo_id", None) or what
        return HubAccessDenied(
            f"{repo} is gated: accept its terms on {endpoint}/{repo}, then set HF_TOKEN to an"
            " access token of that account (or run `huggingface-cli login`)."
        )
    if isinstance(error, (RevisionNotFoundError, RemoteEntryNotFoundError)):
        return HubNotFound(f"{what}: not on the Hub ({_first_line(error)})")
    if isinstance(error, RepositoryNotFoundError):
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            return HubAccessDenied(
                f"{what}: not found, or private or gated. If it exists, accept its terms on"
                f" its page on {endpoint} and set HF_TOKEN (or run `huggingface-cli login`)."
            )
        return HubNotFound(f"{what}: no such repository on {endpoint}")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            return HubAccessDenied(
                f"{what}: access denied ({status}). Set HF_TOKEN to a token that may read it"
                " (or run `huggingface-cli login`)."
            )
        if status == 404:
            return HubNotFound(f"{what}: not found on {endpoint}")
        return HubUnreachable(unreachable.format(f"HTTP {status}"))
    if isinstance(error, (httpx2.TransportError, LocalEntryNotFoundError)):
        return HubUnreachable(unreachable.format(_first_line(error) or type(error).__name__))
    if isinstance(error, OSError):
        return _disk_error(Path(constants.HF_HUB_CACHE), error)
    return None


def _disk_error(folder: Path, error: OSError) -> HubError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{folder} is full: {error.strerror or error}")
    return DestinationNotWritable(f"cannot write to {folder}: {error.strerror or error}")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _disk_error(folder, error) from error
    if not os.access(folder, os.W_OK):
        raise DestinationNotWritable(f"cannot write to {folder}: permission denied")


def _free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
