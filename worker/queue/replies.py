"""Small helpers over redis-py replies (bytes or str) shared by the ledger, events and clients."""

from __future__ import annotations

from typing import Any

import redis


def as_text(value: Any) -> str:
    """A reply value as str ('' for None)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def last_stream_id(client: redis.Redis, stream: str) -> str:
    """The id of the stream's newest entry ('0-0' when empty): read after it for new ones."""
    entries: Any = client.xrevrange(stream, count=1)
    return as_text(entries[0][0]) if entries else "0-0"
