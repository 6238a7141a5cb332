"""What the Hub's search, listings and downloads give back: plain records, light to import
(the window shows them; huggingface_hub is imported only where the Hub is asked)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
