"""Where the queue is (the bundled server's socket, or a URL); telling an outage from a fault."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import quote

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.settings import Settings

NOT_RUNNING_HINT = "start it with `promptspool serve` or open the PromptSpool app (`promptspool`)"


class QueueUnavailable(ConnectionError):
    """No queue answers at the configured address."""


@dataclass(frozen=True)
class QueueAddress:
    """One server, spelled for redis-py and for Celery (which names unix sockets differently)."""

    redis_url: str
    celery_url: str

    @classmethod
    def from_url(cls, url: str) -> QueueAddress:
        if url.startswith("redis+socket://"):
            return cls("unix://" + url.removeprefix("redis+socket://"), url)
        if url.startswith("unix://"):
            return cls(url, "redis+socket://" + url.removeprefix("unix://"))
        if url.startswith("rediss://") and "ssl_cert_reqs=" not in url:
            # Kombu would otherwise accept any certificate: verify it unless told not to.
            url += ("&" if "?" in url else "?") + "ssl_cert_reqs=required"
        return cls(url, url)

    @classmethod
    def for_socket(cls, socket_path: str, password: str) -> QueueAddress:
        # The path is quoted too: a home with '#', '?' or '%' in it is a valid place.
        return cls.from_url(f"unix://:{quote(password, safe='')}@{quote(socket_path)}")

    @classmethod
    def resolve(cls, settings: Settings, url: str | None = None) -> QueueAddress:
        """An explicit URL, else PROMPTSPOOL_REDIS_URL, else the bundled server's socket."""
        url = url or settings.redis_url
        if url:
            return cls.from_url(url)
        runtime = settings.paths.runtime
        try:
            password = (runtime / "server.password").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise QueueUnavailable(f"no PromptSpool queue is running; {NOT_RUNNING_HINT}") from exc
        return cls.for_socket(str(runtime / "server.sock"), password)

    def connect(self, *, check: bool = True) -> redis.Redis:
        client = redis.Redis.from_url(
            self.redis_url,
            socket_connect_timeout=2,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 3),
        )
        if check:
            try:
                client.ping()
            except redis.AuthenticationError as exc:
                client.close()
                raise QueueUnavailable(f"the queue refused the password: {exc}") from exc
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                client.close()
                raise QueueUnavailable(
                    f"no PromptSpool queue is running ({exc}); {NOT_RUNNING_HINT}"
                ) from exc
        return client

    def connect_async(self, max_connections: int = 4096) -> redis.asyncio.Redis:
        """An asyncio client (for servers that follow many streams at once); not checked."""
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=max_connections, socket_connect_timeout=2, timeout=30
        )
        return redis.asyncio.Redis(connection_pool=pool)


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
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return True
    # kombu's wrapper for a broken broker connection. Looked up, not imported: only a process
    # that loaded kombu can raise it, and the command line must not load kombu for this.
    kombu_errors = sys.modules.get("kombu.exceptions")
    if kombu_errors is not None and isinstance(exc, kombu_errors.OperationalError):
        return True
    if isinstance(exc, redis.ResponseError):
        text = str(exc).lstrip("-")
        return text.startswith(_OUTAGE_REPLIES) or "MISCONF" in text
    # A socket that broke or timed out outside redis-py's wrappers; never a local file's error
    # (a directory, a full device, a missing folder), which is the user's to fix, not an outage.
    return isinstance(exc, ConnectionError | TimeoutError) and not isinstance(exc, BrokenPipeError)


def disk_full_hint(exc: BaseException) -> str | None:
    """A sentence for the user when the server refuses writes because it cannot save them."""
    text = str(exc)
    if "MISCONF" in text or "OOM" in text:
        return "the queue server cannot save to disk (is the disk full?): " + text.lstrip("-")
    return None
