"""The models of a remote endpoint, from its `GET /models`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from worker.endpoints.config import Endpoint
from worker.remote.answers import (
    EndpointFailure,
    auth_headers,
    describe,
    redact,
    status_failure,
)
from worker.settings import Settings

LIST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RemoteModel:
    """A model jobs may name as `endpoint/model`."""

    endpoint: str
    model: str

    @property
    def name(self) -> str:
        return f"{self.endpoint}/{self.model}"


def endpoint_models(
    settings: Settings, endpoint: Endpoint, timeout: float = LIST_TIMEOUT_S
) -> list[RemoteModel]:
    """The endpoint's models, sorted; EndpointFailure naming it and the reason if it cannot
    tell (unreachable, key refused, not an OpenAI API)."""
    key = settings.endpoint_key(endpoint)
    headers = auth_headers(key)
    url = endpoint.base_url + "/models"
    try:
        response = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise EndpointFailure(
            redact(f"{describe(endpoint)}: cannot be reached ({_reason(exc)})", key), retry=True
        ) from None
    if response.status_code >= 400:
        failure = status_failure(
            endpoint, response.status_code, response.headers, response.content, "/models"
        )
        raise EndpointFailure(redact(str(failure), key), retry=failure.retry)
    try:
        data = response.json()["data"]
        ids = sorted({str(item["id"]) for item in data})
    except (ValueError, KeyError, TypeError):
        raise EndpointFailure(
            f"{describe(endpoint)}: /models did not answer with an OpenAI model list; is the "
            "base URL an OpenAI-compatible API? It usually ends in /v1"
        ) from None
    return [RemoteModel(endpoint.name, model) for model in ids]


def _reason(exc: httpx.HTTPError) -> str:
    """A short reason for a failed request: the exception's own words, or its kind."""
    text = str(exc).strip()
    return text or type(exc).__name__
