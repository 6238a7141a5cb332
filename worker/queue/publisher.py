"""One attempt's writer: its text, token events and progress, batched into few round trips."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from worker.queue import keys
from worker.queue.events import GLOBAL_MAXLEN


class StreamPublisher:
    """Buffers one attempt's text and writes it every `flush_s`: one pipeline per batch.

    A batch appends to the attempt's durable output, adds a `tokens` event to the job's
    stream, updates the live token counts, and (at most every `progress_s`) puts a progress
    event on the global stream. The same round trip reads the job's cancel flag.
    """

    def __init__(
        self,
        client: redis.Redis,
        job_id: str,
        attempt: int,
        *,
        flush_s: float = 0.025,
        progress_s: float = 0.25,
    ) -> None:
        self.redis = client
        self.job_id = job_id
        self.attempt = attempt
        self.flush_s = flush_s
        self.progress_s = progress_s
        self._pending: list[str] = []
        self._first_at = 0.0  # wall time the oldest pending text was produced
        self._last_flush = 0.0
        self._last_progress = 0.0
        self._stats: dict[str, Any] = {}
        self._offset = 0  # bytes of output stored so far
        self.cancel_seen = False

    def _xadd(
        self, pipe: Any, stream: str, data: dict[str, Any], maxlen: int | None = None
    ) -> None:
        data["id"] = self.job_id
        data["attempt"] = self.attempt
        payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        pipe.xadd(stream, {"d": payload}, maxlen=maxlen, approximate=True)

    def progress(self, phase: str, **stats: Any) -> None:
        """Publish a phase change or progress at once, to the job's and the global stream."""
        self._stats = {"type": "progress", "phase": phase, **stats}
        with self.redis.pipeline(transaction=False) as pipe:
            self._xadd(pipe, keys.events(self.job_id), dict(self._stats))
            self._xadd(pipe, keys.GLOBAL_EVENTS, dict(self._stats), GLOBAL_MAXLEN)
            pipe.execute()
        self._last_progress = time.monotonic()

    def add(self, text: str, at: float | None = None, **stats: Any) -> bool:
        """Queue text (may be empty, produced at wall time `at`, default now) with the latest
        stats; flushes when due. True: the job is to be cancelled."""
        if text:
            if not self._pending:
                self._first_at = at if at is not None else time.time()
            self._pending.append(text)
        self._stats = {"type": "progress", "phase": "generating", **stats}
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()
        return self.cancel_seen

    def flush(self) -> bool:
        """Write what is pending now. Returns whether the job's cancel flag is set.

        The text goes out at once (output and job stream); the live counts on the job's
        hash, the global progress event and the cancel-flag read (a backstop: the worker's
        cancel listener stops the job first) only every `progress_s`.
        """
        text = "".join(self._pending)
        data = text.encode()
        self._pending.clear()
        stamp = time.monotonic()
        self._last_flush = stamp
        job_key = keys.job(self.job_id)
        checked = False
        with self.redis.pipeline(transaction=False) as pipe:
            if text:
                # SETRANGE at the known offset, not APPEND: if the server dies after storing
                # a batch but before replying, the client's retry rewrites the same bytes.
                pipe.setrange(keys.output(self.job_id, self.attempt), self._offset, data)
                # t0: when the batch's first text was produced; t: when it was written.
                event = {**self._stats, "type": "tokens", "text": text,
                         "t0": self._first_at, "t": time.time()}  # fmt: skip
                self._xadd(pipe, keys.events(self.job_id), event)
            if self._stats and stamp - self._last_progress >= self.progress_s:
                self._last_progress = stamp
                mapping: Any = {"completion_tokens": self._stats.get("done", 0)}
                if self._stats.get("tps") is not None:
                    mapping["tokens_per_second"] = self._stats["tps"]
                pipe.hset(job_key, mapping=mapping)
                self._xadd(pipe, keys.GLOBAL_EVENTS, dict(self._stats), GLOBAL_MAXLEN)
                pipe.hget(job_key, "cancel")
                checked = True
            results = pipe.execute() if len(pipe) else []
        self._offset += len(data)
        if checked:
            self.cancel_seen = self.cancel_seen or bool(results[-1])
        return self.cancel_seen
