"""One remote endpoint's settings: where it is, how to authenticate, how hard to push it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from worker.jobs.target import ENDPOINT_NAME_PATTERN

DEFAULT_MAX_CONCURRENCY = 4


class Endpoint(BaseModel):
    """An OpenAI-compatible API that jobs named `NAME/MODEL` run on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=ENDPOINT_NAME_PATTERN,
        description="What jobs call it: model 'NAME/MODEL' runs MODEL here (letters, digits, "
        "'.', '_' and '-'; at most 64).",
    )
    base_url: str = Field(
        description="The API's address, usually ending in /v1 (e.g. http://host:8080/v1)."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Its key. Kept in the system keyring (or a file only you can read) when "
        "saved from the window; never written to the settings file.",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="Read the key from this environment variable instead.",
    )
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        ge=1,
        le=1024,
        description="Requests in flight at once, across every worker of the queue.",
    )
    requests_per_minute: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Start at most this many requests a minute (None: no limit of our own).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r}: a base URL has no query or fragment")
        return value.rstrip("/")

    def key(self, stored: str | None = None) -> str | None:
        """The key to send: `api_key`, else the variable `api_key_env` names, else `stored`
        (from the key store), else None (no Authorization header)."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return stored

    def without_key(self) -> Endpoint:
        return self.model_copy(update={"api_key": None})


def check_unique_names(endpoints: Iterable[Endpoint]) -> None:
    """ValueError naming the first endpoint name given twice."""
    seen: set[str] = set()
    for endpoint in endpoints:
        if endpoint.name in seen:
            raise ValueError(f"two endpoints are named {endpoint.name!r}; names must differ")
        seen.add(endpoint.name)
