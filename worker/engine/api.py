"""What the worker asks of an engine and gets back: load options, stop signals, results, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from worker.jobs.spec import JobSpec


class EngineError(RuntimeError):
    """A job cannot run: the model does not load, the prompt does not fit, decoding failed."""


class RetryLater(EngineError):
    """The job could not run now but may later: a remote endpoint's rate limit, overload or
    lost connection. `retry_after`: the wait it asked for, in seconds (None: back off);
    `max_tries`: tries before the job fails (None: the worker's setting); `rate_limited`:
    the endpoint refused for its rate limit (429), not for a fault."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        max_tries: int | None = None,
        *,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.max_tries = max_tries
        self.rate_limited = rate_limited


class Cancelled(Exception):
    """Generation stopped because the job was cancelled or ran out of time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadOptions:
    n_gpu_layers: int = -1
    n_ctx: int = 4096  # per job: a batched context holds this many tokens for each slot
    n_batch: int = 512
    n_threads: int | None = None
    # None: llama.cpp decides (auto: on wherever the model's layers can run it).
    flash_attn: bool | None = None


@dataclass(frozen=True)
class GpuStatus:
    """Whether layers really run on a GPU; `reason` says why not when they don't."""

    supported: bool
    layers_offloaded: int
    layers_total: int
    reason: str

    @property
    def active(self) -> bool:
        return self.supported and self.layers_offloaded > 0


@dataclass
class StopSignal:
    """Set from another thread to stop generation; also stops at a deadline."""

    event: threading.Event
    deadline: float | None = None
    timeout_reason: str = "timed out"

    def reason(self) -> str | None:
        if self.event.is_set():
            return "cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return self.timeout_reason
        return None


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    tokens_per_second: float | None
    finish_reason: str  # "stop" (end token or stop string), "length", "context"


# Callbacks: progress(phase, done, total, **extra), on the thread that called generate(),
# and text(chunk, *, done, total, tps) -> cancel?, for each token, on the engine's own
# thread: it must only record the text (a worker's publisher writes it out in batches).
ProgressFn = Callable[..., None]
TextFn = Callable[..., bool]


class JobEngine(Protocol):
    """What JobRunner needs: `BatchEngine` offers it."""

    gpu: GpuStatus

    @property
    def model_path(self) -> Path | None: ...

    def ensure_model(self, model: str | Path, options: LoadOptions | None = None) -> bool: ...

    def generate(
        self, spec: JobSpec, stop: StopSignal, on_progress: ProgressFn, on_text: TextFn
    ) -> GenerationResult: ...

    def close(self) -> None: ...
