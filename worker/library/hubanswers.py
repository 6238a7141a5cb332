"""What goes wrong with the Hub, said so that a person knows what to do."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


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


@contextmanager
def hub_errors(endpoint: str, what: str) -> Iterator[None]:
    """Turns huggingface_hub's and httpx's errors into HubErrors that say what to do."""
    try:
        yield
    except HubError:
        raise
    except Exception as error:
        mapped = map_error(error, endpoint, what)
        if mapped is None:
            raise
        raise mapped from error


def map_error(error: BaseException, endpoint: str, what: str) -> HubError | None:
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
        return HubNotFound(f"{what}: not on the Hub ({first_line(error)})")
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
        return HubUnreachable(unreachable.format(first_line(error) or type(error).__name__))
    if isinstance(error, OSError):
        return disk_error(Path(constants.HF_HUB_CACHE), error)
    return None


def disk_error(folder: Path, error: OSError) -> HubError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{folder} is full: {error.strerror or error}")
    return DestinationNotWritable(f"cannot write to {folder}: {error.strerror or error}")


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(folder, error) from error
    if not os.access(folder, os.W_OK):
        raise DestinationNotWritable(f"cannot write to {folder}: permission denied")


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""


def size_text(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
