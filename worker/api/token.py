"""The API's bearer token: made on first use, kept in a file only the user can read."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE_NAME = "api-token"


class TokenFile:
    """The token in `config/api-token` (0600). Rotating it takes effect at the next request:
    the server re-reads the file when it changes."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / TOKEN_FILE_NAME
        self._cached: tuple[tuple[int, int, int], str] | None = None  # file identity, token

    def read(self) -> str:
        """The current token, created on first use."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return self._write(secrets.token_urlsafe(32), replace=False)
        # A rotation replaces the file (a new inode): two within one tick of the file
        # system's clock have the same mtime and size, but never the same inode.
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.path.read_text(encoding="ascii").strip())
        return self._cached[1]

    def rotate(self) -> str:
        """A new token; the old one stops working at once."""
        return self._write(secrets.token_urlsafe(32), replace=True)

    def matches(self, presented: str) -> bool:
        """Whether `presented` is the token (compared in constant time)."""
        return hmac.compare_digest(presented.encode(), self.read().encode())

    def _write(self, token: str, *, replace: bool) -> str:
        """Write the token atomically, 0600 from the first byte; a concurrent first start
        keeps whichever token landed first."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{TOKEN_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        if replace:
            os.replace(tmp, self.path)
        else:
            try:
                os.link(tmp, self.path)  # fails if another process made one meanwhile
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        self._cached = None
        return self.read()
