"""What an endpoint's answer means: its own error message, whether to try again, and when."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping

from worker.endpoints.config import Endpoint

# Worth another try: timeout, conflict, rate limit; and any 5xx (overloaded, restarting).
RETRYABLE_STATUSES = frozenset({408, 409, 429})
LONGEST_RETRY_AFTER_S = 3600.0


class EndpointFailure(RuntimeError):
    """A request to an endpoint failed; the message names the endpoint and the reason.

    `retry`: whether another try may succeed (rate limit, overload, lost connection);
    `retry_after`: how long the endpoint asked us to wait, in seconds (None: it did not say);
    `rate_limited`: a 429, which asks every request to the endpoint to slow down.
    """

    def __init__(
        self,
        message: str,
        *,
        retry: bool = False,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ):
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after
        self.rate_limited = rate_limited


def describe(endpoint: Endpoint) -> str:
    return f"endpoint {endpoint.name!r} ({endpoint.base_url})"


def status_failure(
    endpoint: Endpoint, status: int, headers: Mapping[str, str], body: bytes, path: str
) -> EndpointFailure:
    """The failure an HTTP error status stands for, with the endpoint's own message."""
    message = error_message(body)
    retry = status in RETRYABLE_STATUSES or status >= 500
    if status == 404 and "model" not in (message or "").lower():
        # Not an unknown model (whose message names it): the API is not where the URL says.
        said = f" ({message})" if message else ""
        reason = (f"{path} was not found (404){said}: is the base URL an OpenAI-compatible "
                  "API? It usually ends in /v1")  # fmt: skip
    elif status == 401:
        reason = f"the key was refused (401): {message or 'unauthorized'}"
    elif status == 429:
        reason = f"rate limited (429): {message or 'too many requests'}"
    else:
        reason = f"{status}: {message or _short(body) or 'no message'}"
    return EndpointFailure(
        f"{describe(endpoint)}: {reason}",
        retry=retry,
        retry_after=retry_after(headers),
        rate_limited=status == 429,
    )


def error_message(body: bytes) -> str | None:
    """The message of an OpenAI-shaped error body (`{"error": {"message": ...}}`, or
    `{"detail": ...}`, `{"message": ...}`), None when the body is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for field in ("error", "detail", "message"):
        if isinstance(data.get(field), str):
            return str(data[field])
    return None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the endpoint asks us to wait: `retry-after-ms` (OpenAI's, precise), else
    `Retry-After` as seconds or as an HTTP date; None when neither is there or usable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after-ms")
    if value is not None:
        try:
            return _bounded(float(value) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _bounded(when.timestamp() - (time.time() if now is None else now))


def _bounded(seconds: float) -> float | None:
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), LONGEST_RETRY_AFTER_S)


def _short(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def auth_headers(key: str | None) -> dict[str, str]:
    """The Authorization header for an endpoint's key (none without a key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def redact(text: str, key: str | None) -> str:
    """`text` with the key taken out, should an endpoint echo it in a message."""
    if key and len(key) >= 6:
        return text.replace(key, "[key]")
    return text
