"""Limits that hold across every worker of a queue: an endpoint's slots and its pace."""

from __future__ import annotations

from typing import Any

import redis

from worker.queue import keys

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# ARGV: holder, limit, lease_ms -> {1 taken | 0 full, holders now}
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lease = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or n < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * lease)
  return {1, redis.call('ZCARD', KEYS[1])}
end
return {0, n}
"""
)
# ARGV: holder, lease_ms -> 1 renewed | 0 the lease had run out (another may hold the slot)
_RENEW = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[2])
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ends or tonumber(ends) < now then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return 1
"""
)
# KEYS: pace (next start, ms), learned (interval the endpoint's 429s asked for, ms)
# ARGV: interval_ms (0: none set) -> ms to wait before this request may start (reserved)
_PACE = (
    _NOW_MS
    + """
local interval = math.max(tonumber(ARGV[1]), tonumber(redis.call('GET', KEYS[2]) or 0))
local start = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
if interval > 0 then
  redis.call('SET', KEYS[1], start + interval, 'PX', start + interval - now + 60000)
end
return start - now
"""
)
# KEYS: as _PACE; ARGV: the 429's wait in ms, how long the learned pace lasts (ms)
_SLOW_DOWN = (
    _NOW_MS
    + """
local wait = tonumber(ARGV[1])
local learned = math.max(tonumber(redis.call('GET', KEYS[2]) or 0), wait)
redis.call('SET', KEYS[2], learned, 'PX', tonumber(ARGV[2]))
local start = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now + wait)
redis.call('SET', KEYS[1], start, 'PX', start - now + 60000)
return learned
"""
)


class EndpointSlots:
    """A semaphore per endpoint in the queue's server: at most `limit` requests in flight,
    whichever workers send them.

    Each slot is a lease on the server's clock, renewed while its request runs: a worker
    that dies or stops (SIGSTOP, a laptop's sleep) holds its slots only until the lease runs
    out, and then others may take them.
    """

    def __init__(self, client: redis.Redis, lease_s: float = 30.0) -> None:
        self.lease_ms = int(lease_s * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._client = client

    def try_acquire(self, endpoint: str, holder: str, limit: int) -> tuple[bool, int]:
        """(taken, requests in flight): a slot for `holder` if fewer than `limit` are held."""
        taken, held = self._acquire(
            keys=[keys.endpoint_slots(endpoint)], args=[holder, limit, self.lease_ms]
        )
        return bool(taken), int(held)

    def renew(self, endpoint: str, holder: str) -> bool:
        """Extend the lease; False when it had run out (the slot may be someone else's)."""
        result: Any = self._renew(
            keys=[keys.endpoint_slots(endpoint)], args=[holder, self.lease_ms]
        )
        return bool(result)

    def release(self, endpoint: str, holder: str) -> None:
        self._client.zrem(keys.endpoint_slots(endpoint), holder)

    def held(self, endpoint: str) -> int:
        """Slots held now (leases that ran out included until the next acquire)."""
        return int(self._client.zcard(keys.endpoint_slots(endpoint)))


class Pacer:
    """Spaces the requests to an endpoint across every worker: each request reserves the
    next start time on the server's clock, one interval after the last.

    The interval is the endpoint's requests_per_minute, when set; and after a 429, the wait
    it asked for (the longest in the last LEARNED_S seconds). A 429 also holds every request
    until that wait is over: then they go one by one at that pace instead of all at once
    (for a token-bucket limiter, its Retry-After is about the time one request's token takes
    to come back). A minute without a 429 and the endpoint is run unpaced again.
    """

    LEARNED_S = 60.0
    DEFAULT_WAIT_S = 1.0  # a 429 that says nothing of when to come back

    def __init__(self, client: redis.Redis) -> None:
        self._pace = client.register_script(_PACE)
        self._slow_down = client.register_script(_SLOW_DOWN)

    def reserve(self, endpoint: str, per_minute: float | None = None) -> float:
        """Seconds until this request may start (0: now); its start is reserved."""
        interval_ms = max(1, round(60_000 / per_minute)) if per_minute else 0
        wait_ms: Any = self._pace(keys=self._keys(endpoint), args=[interval_ms])
        return max(0, int(wait_ms)) / 1000

    def slow_down(self, endpoint: str, retry_after: float | None) -> float:
        """The endpoint answered 429, asking to wait `retry_after` s (None: it did not say):
        no request starts before then, and they keep that pace for a while. The interval
        now kept, in seconds."""
        wait_ms = max(
            1, round(1000 * (self.DEFAULT_WAIT_S if retry_after is None else retry_after))
        )
        learned: Any = self._slow_down(
            keys=self._keys(endpoint), args=[wait_ms, round(self.LEARNED_S * 1000)]
        )
        return int(learned) / 1000

    @staticmethod
    def _keys(endpoint: str) -> list[str]:
        return [keys.endpoint_pace(endpoint), keys.endpoint_learned_pace(endpoint)]
