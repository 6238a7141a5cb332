"""The optional per-token request limit (http_rate_limit_rpm): GCRA, kept in the queue's server."""

from __future__ import annotations

import hashlib
import logging
import math

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.api.errors import ApiError
from worker.queue import keys
from worker.queue.connection import QueueAddress, is_queue_outage

log = logging.getLogger(__name__)

# GCRA in one step on the server, so that every API process on the queue shares one budget
# per token and the clocks of the API hosts do not matter (the server's TIME is the clock).
# KEYS[1]: the token's key, holding its theoretical arrival time (TAT, ms of the server clock).
# ARGV[1]: the emission interval T (ms); ARGV[2]: the burst tolerance (ms).
# Returns {1, 0} for a request allowed (and counted), {0, wait} for one refused, where `wait`
# is the ms (rounded up) after which the same request would be allowed. A refusal costs
# nothing: the TAT moves only for requests that pass. The key expires when its TAT is reached,
# since from then on it says no more than a missing key does.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then
  return {0, math.ceil(wait)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
return {1, 0}
"""

# A limiter that cannot reach the server lets the request through at once: its own
# connection, short timeouts and no retries, so an outage costs a request no more than it
# would without a limit (the request then meets the outage itself and answers 503).
_TIMEOUT_S = 1.0


def token_hash(token: str) -> str:
    """A short digest that names the token's budget: the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class RateLimiter:
    """At most `rpm` requests a minute per token, after a burst of one second's worth of them
    (at least one): a client that was idle may send `burst` requests at once, then one every
    `interval_ms`. A limit below 60 a minute thus allows no burst beyond the one request."""

    def __init__(self, client: redis.Redis, rpm: float) -> None:
        self.client = client
        self.rpm = rpm
        self._script = client.register_script(_GCRA)

    @classmethod
    def for_queue(cls, address: QueueAddress, rpm: float) -> RateLimiter:
        client = redis.Redis.from_url(
            address.redis_url,
            socket_connect_timeout=_TIMEOUT_S,
            socket_timeout=_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, rpm)

    @property
    def interval_ms(self) -> float:
        """The emission interval T: one request per this many ms in the long run."""
        return 60_000 / self.rpm

    @property
    def burst(self) -> float:
        """How many requests an idle token may send at once: one second's worth, at least 1."""
        return max(1.0, self.rpm / 60)

    @property
    def tolerance_ms(self) -> float:
        """GCRA's burst tolerance: how far ahead of now a token's TAT may run."""
        return (self.burst - 1) * self.interval_ms

    def wait_ms(self, token: str) -> int:
        """0 if the token may make a request now (it is counted); otherwise the ms to wait,
        the request not counted. 0 too when the server does not answer (see _TIMEOUT_S)."""
        key = keys.rate_limit(token_hash(token))
        try:
            allowed, wait = self._script(keys=[key], args=[self.interval_ms, self.tolerance_ms])
        except redis.RedisError as exc:
            if not is_queue_outage(exc):
                raise
            log.debug("request let through unchecked: the queue is not answering (%s)", exc)
            return 0
        return 0 if allowed else max(1, int(wait))

    def check(self, token: str) -> None:
        """Raise the 429 for a token over its limit; return if the request may go on."""
        wait = self.wait_ms(token)
        if wait:
            raise self.refusal(wait)

    def refusal(self, wait_ms: int) -> ApiError:
        """The 429: what limit was hit and when to try again, in the headers OpenAI's clients
        honour (`retry-after-ms`, precise) and HTTP's (`Retry-After`, whole seconds)."""
        message = (
            f"rate limit reached: this API token may make {self.rpm:g} requests a minute "
            f"(at most {math.floor(self.burst)} at once; setting http_rate_limit_rpm); "
            f"try again in {wait_ms / 1000:.3f} s"
        )
        headers = {"Retry-After": str(max(1, math.ceil(wait_ms / 1000))),
                   "retry-after-ms": str(wait_ms)}  # fmt: skip
        return ApiError(429, message, code="rate_limit_exceeded", headers=headers)

    def close(self) -> None:
        self.client.close()
