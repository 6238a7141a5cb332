"""Moving a file's bytes from the Hub: resumable, cancellable, checked, with progress."""

from __future__ import annotations

import hashlib
import math
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import constants, get_session, hf_raise_for_status

from worker.library.hubanswers import (
    ChecksumMismatch,
    DiskFull,
    DownloadCancelled,
    HubError,
    HubUnreachable,
    disk_error,
    make_folder,
    map_error,
    size_text,
)
from worker.library.hubtypes import Progress

SHA256 = re.compile(r"^[0-9a-f]{64}$")

GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")

RETRIES = 5  # reconnections after a dropped transfer, each after progress resets the count

POLL_S = 0.1  # how often a waiting download looks at its cancel event

PROGRESS_EVERY_S = 0.1

SPEED_WINDOW_S = 2.0  # the time constant of the smoothed speed


@dataclass(frozen=True)
class Remote:
    filename: str
    url: str
    commit: str
    etag: str
    size: int | None
    headers: dict[str, str]


def transfer(
    remote: Remote, partial: Path, final: Path, meter: Meter, cancel: threading.Event
) -> None:
    """Fetch the rest of `partial` from the Hub, check its digest, move it to `final`."""
    make_folder(partial.parent)
    expected = remote.size
    have, digest = _resume(remote, partial, cancel)
    if expected is not None:
        free = free_bytes(partial.parent)
        if expected - have > free:
            raise DiskFull(
                f"{remote.filename} needs {size_text(expected - have)} more but {partial.parent}"
                f" has {size_text(free)} free"
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
                            f" {remote.filename} ({error}); {size_text(have)} are kept and the next"
                            " download resumes from there. The local model library still works."
                        ) from error
                    if cancel.wait(0.0 if failures == 1 else min(2.0 ** (failures - 2), 8.0)):
                        raise DownloadCancelled(f"{remote.filename}: download cancelled") from None
    except OSError as error:
        raise disk_error(partial.parent, error) from error
    if have != expected:
        raise HubError(f"{remote.filename}: got {have} bytes, expected {expected}")
    actual = digest.hexdigest()
    if actual is not None and actual != remote.etag:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(remote.filename, remote.etag, actual)
    try:
        os.replace(partial, final)
    except OSError as error:
        raise disk_error(final.parent, error) from error


def _resume(remote: Remote, partial: Path, cancel: threading.Event) -> tuple[int, _Digest]:
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


def _stream(remote: Remote, offset: int, cancel: threading.Event) -> Iterator[tuple[int, bytes]]:
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
                mapped = map_error(item, constants.ENDPOINT, remote.filename)
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


class Meter:
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


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free
