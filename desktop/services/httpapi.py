"""The HTTP API as the app sees it: off, refused, starting, ready at its URL, or down."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from worker.api.guard import BindRefused, check_bind
from worker.api.info import api_url, read_api_info
from worker.settings import Settings

API_FIELDS = (
    "http_host",
    "http_port",
    "http_tls_cert",
    "http_tls_key",
    "http_insecure",
    "http_allowed_hosts",
    "http_cors_origins",
    "http_max_upload_mb",
    "http_rate_limit_rpm",
    "model_dirs",
    "endpoints",  # the API takes NAME/MODEL for the endpoints it knows
)


class ApiState(StrEnum):
    off = "off"  # http_port is 0, or the app supervises nothing
    refused = "refused"  # the settings would expose it without TLS
    starting = "starting"
    ready = "ready"
    down = "down"  # it ended; it starts again after its backoff


@dataclass(frozen=True)
class ApiStatus:
    """What the status bar and the settings dialog say about the API."""

    state: ApiState
    url: str = ""  # where it listens (or will)
    detail: str = ""  # why it is refused or down; whose it is
    owned: bool = True  # started by this app (False: another process of this home runs it)

    def summary(self) -> str:
        """One line for the status bar's tooltip and the settings dialog."""
        if self.state is ApiState.off:
            return "The HTTP API is off (port 0)."
        if self.state is ApiState.refused:
            return f"The HTTP API was not started: {self.detail.rstrip('.')}."
        if self.state is ApiState.starting:
            return f"The HTTP API is starting at {self.url}…"
        if self.state is ApiState.down:
            reason = f": {self.detail}" if self.detail else ""
            return f"The HTTP API stopped{reason}; it starts again shortly."
        if not self.owned:
            whose = f", {self.detail}" if self.detail else ""
            return f"The HTTP API answers at {self.url} (run by another process{whose})."
        return f"The HTTP API answers at {self.url}."


def api_changed(old: Settings, new: Settings) -> bool:
    """Whether the API must start again to take the new settings."""
    return any(getattr(old, name) != getattr(new, name) for name in API_FIELDS)


def planned_status(settings: Settings, own_pid: int | None) -> ApiStatus:
    """What starting the API with these settings gives before anything starts: off, refused,
    another process of this home already serving it (ready, not owned), or starting.
    It reads a file and may probe a pid: cheap, but run it off the loop."""
    if settings.http_port == 0:
        return ApiStatus(ApiState.off)
    try:
        tls = check_bind(settings)
    except BindRefused as exc:
        return ApiStatus(ApiState.refused, detail=str(exc))
    info = read_api_info(settings)
    if info is not None and int(str(info["pid"])) != own_pid:
        return ApiStatus(ApiState.ready, str(info["url"]), f"pid {info['pid']}", owned=False)
    return ApiStatus(ApiState.starting, api_url(settings, tls=tls))
