"""Small helpers over redis-py replies (bytes or str) shared by the ledger, events and clients."""

from __future__ import annotations

from typing import Any

import redis
from kombu.exceptions import OperationalError


def as_text(value: Any) -> str:
    """A reply value as str ('' for None)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def last_stream_id(client: redis.Redis, stream: str) -> str:
    """The id of the stream's newest entry ('0-0' when empty): read after it for new ones."""
    entries: Any = client.xrevrange(stream, count=1)
    return as_text(entries[0][0]) if entries else "0-0"


# Replies that mean "the server cannot take writes right now", not "this request is wrong".
_OUTAGE_REPLIES = ("MISCONF", "LOADING", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN")


def is_queue_outage(exc: BaseException) -> bool:
    """Whether `exc` means the server is gone, restarting or refusing writes for a while.

    A connection that broke or timed out, a server still loading its data, and a server
    that refuses writes because its disk is full (MISCONF) all pass once the server is
    back; a wrong password or a bad command does not.
    """
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return False
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OperationalError):
        return True  # OperationalError: kombu's wrapper for a broken broker connection
    if isinstance(exc, redis.ResponseError):
        text = str(exc).lstrip("-")
        return text.startswith(_OUTAGE_REPLIES) or "MISCONF" in text
    return isinstance(exc, OSError)


def disk_full_hint(exc: BaseException) -> str | None:
    """A sentence for the user when the server refuses writes because it cannot save them."""
    text = str(exc)
    if "MISCONF" in text or "No space left" in text or "OOM" in text:
        return "the queue server cannot save to disk (is the disk full?): " + text.lstrip("-")
    return None
