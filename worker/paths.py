"""Where PromptSpool keeps its files: platformdirs, or everything under PROMPTSPOOL_HOME."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

import platformdirs

APP_NAME = "promptspool"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100


class AppPaths(NamedTuple):
    """The four directories the app uses; created on demand by `ensure()`. (A NamedTuple,
    not a dataclass: every `promptspool` start reads it, and dataclasses import inspect.)"""

    data: Path
    runtime: Path
    logs: Path
    config: Path

    @classmethod
    def resolve(cls, home: Path | None = None) -> AppPaths:
        """Paths under `home` when given (or PROMPTSPOOL_HOME), else the platform's user dirs."""
        if home is None and os.environ.get("PROMPTSPOOL_HOME"):
            home = Path(os.environ["PROMPTSPOOL_HOME"])
        if home is not None:
            home = home.expanduser().absolute()
            return cls(home / "data", home / "run", home / "logs", home / "config")
        return cls(
            data=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            runtime=_runtime_dir(),
            logs=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
            config=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        )

    def ensure(self) -> AppPaths:
        """Create the directories, private to the user (0700): the data holds every prompt and
        output, the logs name jobs and models, the runtime dir the socket and its password."""
        for path in (self.data, self.logs, self.config, self.runtime):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            if path.stat().st_uid != os.getuid():
                raise PermissionError(f"{path} belongs to another user; refusing to use it")
            os.chmod(path, 0o700)
        return self

    @property
    def config_file(self) -> Path:
        return self.config / "settings.json"


def _runtime_dir() -> Path:
    """The user's runtime dir when there is one and it is short enough for a socket path.

    On Linux that is $XDG_RUNTIME_DIR (per user, mode 0700, cleared at logout); without
    it, a private directory in the temp dir that `ensure()` checks we own.
    """
    import tempfile  # only here: most starts never need it

    fallback = Path(tempfile.gettempdir()) / f"{APP_NAME}-{os.getuid()}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if sys.platform.startswith("linux") and not (xdg and os.access(xdg, os.W_OK)):
        return fallback
    candidate = Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))
    if len(str(candidate / "server.sock")) <= MAX_SOCKET_PATH:
        return candidate
    return fallback
