"""Where the queue is: the bundled server's socket and password, or an external URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import redis
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
        return cls.from_url(f"unix://:{quote(password, safe='')}@{socket_path}")

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
