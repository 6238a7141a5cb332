"""RemoteEngine: runs jobs on OpenAI-compatible endpoints, streamed on one asyncio loop."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from httpx_sse import aconnect_sse

from worker.endpoints.config import Endpoint
from worker.engine.api import (
    Cancelled,
    EngineError,
    GenerationResult,
    GpuStatus,
    LoadOptions,
    ProgressFn,
    RetryLater,
    StopSignal,
    TextFn,
)
from worker.jobs.spec import JobSpec
from worker.jobs.target import remote_target
from worker.remote.answers import (
    EndpointFailure,
    auth_headers,
    describe,
    redact,
    status_failure,
)
from worker.remote.limits import EndpointSlots, Pacer
from worker.remote.request import piece_of, request_of
from worker.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often a waiting job looks at its stop signal (a cancel ends it this soon)
CONNECT_TIMEOUT_S = 10.0
PROGRESS, DONE, FAILED = range(3)


@dataclass
class _Call:
    """One job's request: what the loop thread reports to the job's own thread."""

    endpoint: Endpoint
    key: str | None
    path: str
    body: dict[str, Any]
    on_text: TextFn
    events: queue.SimpleQueue[tuple[int, Any, Any]]
    read_timeout: float  # between two pieces of the answer: a stalled endpoint is retried

    def post(self, kind: int, value: Any = None, extra: Any = None) -> None:
        self.events.put((kind, value, extra))


class RemoteEngine:
    """What JobRunner needs (see engine.api.JobEngine), for jobs whose model is `NAME/MODEL`.

    Each job runs on its Celery thread until its request is sent: it takes one of the
    endpoint's slots (shared by every worker of the queue) and waits its turn under the
    endpoint's requests_per_minute. The request itself streams on the engine's one asyncio
    loop, which hands each piece of text to `on_text` and ends the request within POLL_S
    of a cancel. Failures that another try may cure (429, 408, 409, 5xx, lost connections)
    raise RetryLater; others raise EngineError with the endpoint's own message.
    """

    gpu = GpuStatus(False, 0, 0, "remote endpoints run no local model")

    def __init__(
        self, settings: Callable[[], Settings], client: redis.Redis, *, lease_s: float = 30.0
    ) -> None:
        """`settings()`: the current settings, asked for each job (endpoints edited in the
        window apply to the next job without a restart)."""
        self._settings = settings
        self.slots = EndpointSlots(client, lease_s)
        self.pacer = Pacer(client)
        self._renew_s = lease_s / 3
        self._loop = asyncio.new_event_loop()
        self._http: httpx.AsyncClient | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="promptspool-remote", daemon=True
        )
        self._thread.start()

    # --- JobEngine --------------------------------------------------------------------

    @property
    def model_path(self) -> Path | None:
        return None

    def ensure_model(self, model: str | Path, options: LoadOptions | None = None) -> bool:
        return False

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._http is not None:
            self._submit(self._http.aclose()).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def generate(
        self, spec: JobSpec, stop: StopSignal, on_progress: ProgressFn, on_text: TextFn
    ) -> GenerationResult:
        settings = self._settings()
        target = remote_target(spec.model)
        endpoint = settings.endpoint(target.endpoint) if target is not None else None
        if target is None or endpoint is None:
            known = ", ".join(sorted(settings.endpoint_names)) or "none are configured"
            raise EngineError(f"model {spec.model!r}: no such remote endpoint (endpoints: "
                              f"{known}; setting 'endpoints')")  # fmt: skip
        holder = uuid.uuid4().hex
        self._take_slot(endpoint, holder, stop, on_progress)
        try:
            self._wait_turn(endpoint, holder, stop, on_progress)
            path, body = request_of(spec, target.model)
            call = _Call(endpoint, settings.endpoint_key(endpoint), path, body, on_text,
                         queue.SimpleQueue(), settings.remote_read_timeout)  # fmt: skip
            try:
                return self._run(call, holder, stop, on_progress)
            except RetryLater as exc:  # the tries the settings allow now (they may be edited)
                exc.max_tries = settings.remote_max_tries
                if exc.rate_limited:  # every request to it waits, and then goes one by one
                    self._slow_down(endpoint, exc.retry_after)
                raise
        finally:
            try:
                self.slots.release(endpoint.name, holder)
            except redis.RedisError as exc:  # its lease runs out by itself
                log.warning("could not give back a slot of endpoint %r: %s", endpoint.name, exc)

    # --- before the request -----------------------------------------------------------

    def _take_slot(
        self, endpoint: Endpoint, holder: str, stop: StopSignal, on_progress: ProgressFn
    ) -> None:
        """Wait for one of the endpoint's max_concurrency slots (shown while it waits)."""
        limit = endpoint.max_concurrency
        shown = -1
        while True:
            taken, busy = self.slots.try_acquire(endpoint.name, holder, limit)
            if taken:
                return
            if busy != shown:
                shown = busy
                note = f"waiting for endpoint {endpoint.name!r}: {busy} of {limit} requests busy"
                brief = f"{endpoint.name}: {busy}/{limit} busy"
                on_progress("waiting", done=0, total=1, note=note, brief=brief)
            _pause(stop, POLL_S)

    def _wait_turn(
        self, endpoint: Endpoint, holder: str, stop: StopSignal, on_progress: ProgressFn
    ) -> None:
        """Start no sooner than the endpoint's requests_per_minute allows, nor than the pace
        its last 429s asked for (see Pacer); the slot it holds meanwhile stays its own."""
        wait = self.pacer.reserve(endpoint.name, endpoint.requests_per_minute)
        if wait <= 0:
            return
        if endpoint.requests_per_minute is not None:
            why = f"takes {endpoint.requests_per_minute:g} requests a minute"
        else:
            why = "asked us to slow down (429)"
        note = f"waiting {wait:.1f} s: endpoint {endpoint.name!r} {why}"
        brief = f"{endpoint.name}: paced, {wait:.0f} s"
        on_progress("waiting", done=0, total=1, note=note, brief=brief)
        deadline = time.monotonic() + wait
        renew_at = time.monotonic() + self._renew_s
        while (left := deadline - time.monotonic()) > 0:
            _pause(stop, min(left, POLL_S))
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self._renew_s
                self._renew(endpoint, holder)

    def _slow_down(self, endpoint: Endpoint, retry_after: float | None) -> None:
        try:
            self.pacer.slow_down(endpoint.name, retry_after)
        except redis.RedisError as exc:
            log.warning("could not note endpoint %r's rate limit: %s", endpoint.name, exc)

    # --- the request ------------------------------------------------------------------

    def _run(
        self, call: _Call, holder: str, stop: StopSignal, on_progress: ProgressFn
    ) -> GenerationResult:
        """Stream the request on the loop; play its progress here; renew the slot's lease;
        end it when the job is stopped."""
        future = self._submit(self._request(call))
        renew_at = time.monotonic() + self._renew_s
        try:
            while True:
                try:
                    kind, value, extra = call.events.get(timeout=POLL_S)
                except queue.Empty:
                    reason = stop.reason()
                    if reason is not None:
                        raise Cancelled(reason) from None
                    if time.monotonic() >= renew_at:
                        renew_at = time.monotonic() + self._renew_s
                        self._renew(call.endpoint, holder)
                    continue
                if kind == PROGRESS:
                    on_progress(*value, **extra)
                elif kind == DONE:
                    result: GenerationResult = value
                    return result
                else:
                    raise value
        finally:
            future.cancel()  # closes the stream when it still runs (cancel, time limit)

    def _renew(self, endpoint: Endpoint, holder: str) -> None:
        try:
            if not self.slots.renew(endpoint.name, holder):
                log.warning("the slot lease of a request to endpoint %r ran out (the worker was "
                            "paused?); the request goes on", endpoint.name)  # fmt: skip
        except redis.RedisError as exc:
            log.warning("could not renew a slot of endpoint %r: %s", endpoint.name, exc)

    async def _request(self, call: _Call) -> None:
        """The request, streamed: every outcome is posted to the job's thread."""
        try:
            result = await self._stream(call)
        except asyncio.CancelledError:
            raise
        except Cancelled as exc:
            call.post(FAILED, exc)
        except EndpointFailure as exc:
            message = redact(str(exc), call.key)
            failure: Exception = (
                RetryLater(message, exc.retry_after, rate_limited=exc.rate_limited)
                if exc.retry
                else EngineError(message)
            )
            call.post(FAILED, failure)
        except httpx.HTTPError as exc:  # the connection failed or broke off
            what = (
                "cannot be reached" if isinstance(exc, httpx.ConnectError) else "answer broke off"
            )
            reason = str(exc).strip() or type(exc).__name__
            call.post(FAILED, RetryLater(redact(f"{describe(call.endpoint)}: {what} ({reason})",
                                                call.key)))  # fmt: skip
        except Exception as exc:
            log.exception("request to endpoint %r failed", call.endpoint.name)
            call.post(FAILED, EngineError(redact(f"{describe(call.endpoint)}: {exc!r}", call.key)))
        else:
            call.post(DONE, result)

    async def _stream(self, call: _Call) -> GenerationResult:
        endpoint = call.endpoint
        headers = auth_headers(call.key)
        max_tokens = int(call.body["max_tokens"])
        started = time.monotonic()
        call.post(PROGRESS, ("prompt", 0, 1), {"endpoint": endpoint.name})
        url = endpoint.base_url + call.path
        timeout = httpx.Timeout(call.read_timeout, connect=CONNECT_TIMEOUT_S)
        async with aconnect_sse(self._client(), "POST", url, json=call.body, headers=headers,
                                timeout=timeout) as source:  # fmt: skip
            response = source.response
            if response.status_code >= 400:
                body = await response.aread()
                raise status_failure(endpoint, response.status_code, response.headers, body,
                                     call.path)  # fmt: skip
            kind = response.headers.get("content-type", "")
            if "text/event-stream" not in kind:
                return _whole_answer(endpoint, kind, await response.aread(), call, started)
            text: list[str] = []
            done, first, finish, usage = 0, None, None, None
            async for event in source.aiter_sse():
                if event.data.strip() == "[DONE]":
                    break
                chunk = _chunk(endpoint, event.data)
                usage = chunk.get("usage") or usage
                piece, reason = piece_of(chunk)
                finish = reason or finish
                if not piece:
                    continue
                done += 1
                first = first or time.monotonic()
                elapsed = time.monotonic() - first
                tps = (done - 1) / elapsed if done > 1 and elapsed > 0 else None
                text.append(piece)
                if call.on_text(piece, done=done, total=max_tokens, tps=tps):
                    raise Cancelled("cancelled")  # the job was cancelled: stop reading
        return _result("".join(text), done, usage, finish, first or started)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:  # made on the loop, the only place it is used
            self._http = httpx.AsyncClient(follow_redirects=True)
        return self._http

    def _submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)


def _pause(stop: StopSignal, seconds: float) -> None:
    """Wait up to `seconds`; Cancelled as soon as the job must stop."""
    stop.event.wait(seconds)
    reason = stop.reason()
    if reason is not None:
        raise Cancelled(reason)


def _chunk(endpoint: Endpoint, data: str) -> dict[str, Any]:
    """One streamed event as a dict; an error event is the endpoint's failure."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise EndpointFailure(
            f"{describe(endpoint)}: streamed something that is not JSON; is the base URL an "
            "OpenAI-compatible API?"
        ) from None
    if not isinstance(chunk, dict):
        raise EndpointFailure(f"{describe(endpoint)}: streamed an event that is not an object")
    error = chunk.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise EndpointFailure(f"{describe(endpoint)}: failed mid-answer: {message}", retry=True)
    return chunk


def _whole_answer(
    endpoint: Endpoint, kind: str, body: bytes, call: _Call, started: float
) -> GenerationResult:
    """An endpoint that answered a streamed request in one piece (JSON), or not at all."""
    try:
        data = json.loads(body) if "json" in kind else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or "choices" not in data:
        raise EndpointFailure(
            f"{describe(endpoint)}: answered {kind or 'something'} instead of an OpenAI "
            "completion; is the base URL an OpenAI-compatible API? It usually ends in /v1"
        )
    text, finish = piece_of(data)
    if text:
        call.on_text(text, done=1, total=int(call.body["max_tokens"]), tps=None)
    return _result(text, 1 if text else 0, data.get("usage"), finish, started)


def _result(
    text: str, pieces: int, usage: Any, finish: str | None, first: float
) -> GenerationResult:
    usage = usage if isinstance(usage, dict) else {}
    completion = int(usage.get("completion_tokens") or pieces)
    elapsed = time.monotonic() - first
    tps = completion / elapsed if completion > 1 and elapsed > 0 else None
    return GenerationResult(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=completion,
        tokens_per_second=tps,
        finish_reason=finish if finish in ("stop", "length") else "stop",
    )
