"""Where this home's HTTP API listens: its URL, and the runtime file the running API keeps.

Light on purpose (no FastAPI, no uvicorn): the command line and the window read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from worker.settings import Settings

API_INFO_FILE = "api.json"  # in the runtime folder: where the running API listens


def api_url(settings: Settings, port: int | None = None, *, tls: bool = False) -> str:
    host = settings.http_host
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port or settings.http_port}"


def info_file(settings: Settings) -> Path:
    return settings.paths.runtime / API_INFO_FILE


def read_api_info(settings: Settings) -> dict[str, object] | None:
    """Where this home's API listens ({'url', 'pid'}), if one is running."""
    try:
        info = json.loads(info_file(settings).read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None


def write_api_info(path: Path, url: str) -> None:
    """Say (0600, atomically) that this process serves the API at `url`."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"url": url, "pid": os.getpid()}, handle)
    os.replace(tmp, path)


def remove_api_info(path: Path) -> None:
    """Take the file back, if it is still this process's."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and info.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
