"""The llama.cpp engine: keeps one model loaded, formats prompts, streams tokens, honours cancel."""

from __future__ import annotations

import ctypes
import logging
import os
import random
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import llama_cpp
import psutil

from worker.gguffile import GgufError, GgufLayout, scan_gguf
from worker.prompting import PromptFormatter
from worker.spec import JobSpec, check_model_file
from worker.textstream import TextAssembler

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """A job cannot run: the model does not load, the prompt does not fit, decoding failed."""


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
    # None: llama.cpp decides when layers run on a GPU; off on the CPU, where it is ~3x slower.
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


# Callbacks: progress(phase, done, total, tps, eta) and text(chunk, done, total, tps, eta, at),
# where `at` (optional) is the wall time the chunk's first token was produced.
ProgressFn = Callable[..., None]
TextFn = Callable[..., bool]


def thread_counts(options: LoadOptions) -> tuple[int, int]:
    """CPU threads for generating and for reading prompts: options.n_threads for both, else
    one per physical core for generation (as llama.cpp's own tools choose; more, on SMT
    siblings, only contend for the same memory bandwidth) and every logical core for prompts.

    (llama-cpp-python's default of half the logical cores leaves half of a machine
    without SMT idle: on 2 cores, 132 instead of 222 tokens/s for a 110M-parameter Q4_K_M.)
    """
    if options.n_threads:
        return options.n_threads, options.n_threads
    logical = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or max(logical // 2, 1)
    return physical, logical


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def gpu_present() -> bool:
    """An NVIDIA or AMD compute device node exists (a GPU that llama.cpp could use)."""
    return any(Path(node).exists() for node in ("/dev/nvidia0", "/dev/kfd"))


def gpu_status(model: Any, options: LoadOptions) -> GpuStatus:
    """Whether the loaded `model` (a llama_model pointer) really runs layers on a GPU."""
    total = int(llama_cpp.llama_model_n_layer(model)) + 1  # + output layer
    if not gpu_offload_supported():
        if gpu_present():
            reason = (
                "a GPU is present but llama.cpp was built for the CPU only "
                "(rebuild it: PROMPTSPOOL_CUDA=1 make clean run)"
            )
        else:
            reason = "CPU only: llama.cpp was built without GPU support and no GPU was found"
        return GpuStatus(False, 0, total, reason)
    wanted = total if options.n_gpu_layers < 0 else min(options.n_gpu_layers, total)
    reason = "" if wanted else "n_gpu_layers is 0"
    return GpuStatus(True, wanted, total, reason)


class JobEngine(Protocol):
    """What JobRunner needs: `Engine` (one job at a time) and `BatchEngine` (several) offer it."""

    gpu: GpuStatus
    text_interval: float  # a job's text reaches on_text at most this often (0: every token)

    @property
    def model_path(self) -> Path | None: ...

    def ensure_model(self, model: str | Path, options: LoadOptions | None = None) -> bool: ...

    def generate(
        self, spec: JobSpec, stop: StopSignal, on_progress: ProgressFn, on_text: TextFn
    ) -> GenerationResult: ...

    def close(self) -> None: ...


class Engine:
    """One model per process, loaded lazily and kept until a job needs another."""

    text_interval = 0.0  # on_text gets every token

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self._llm: llama_cpp.Llama | None = None
        self._model_path: Path | None = None
        self._loaded_options: LoadOptions | None = None
        self._stop: StopSignal | None = None
        # Keep a reference: ctypes callbacks must outlive the context that calls them.
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # a NULL callback
        self.gpu = GpuStatus(gpu_offload_supported(), 0, 0, "no model loaded yet")

    @property
    def model_path(self) -> Path | None:
        return self._model_path

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        return self._stop is not None and self._stop.reason() is not None

    def ensure_model(self, model: str | Path, options: LoadOptions | None = None) -> bool:
        """Load `model` unless it is already loaded with the same options; True if loaded now."""
        options = options or self.options
        path = check_model_file(model)
        if self._llm is not None and path == self._model_path and options == self._loaded_options:
            return False
        self.close()
        layout = scan_model(path)  # a truncated or corrupt file fails here, with the reason
        log.info(
            "loading model %s (n_gpu_layers=%s, n_ctx=%s)",
            path,
            options.n_gpu_layers,
            options.n_ctx,
        )
        threads, threads_batch = thread_counts(options)
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_gpu_layers=options.n_gpu_layers,
                n_ctx=options.n_ctx,
                n_batch=options.n_batch,
                n_ubatch=min(options.n_batch, 512),
                n_threads=threads,
                n_threads_batch=threads_batch,
                flash_attn=options.flash_attn is True,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(load_error_message(path, layout, options, exc)) from exc
        self._model_path = path
        self._loaded_options = options
        self.gpu = gpu_status(self._llm._model.model, options)
        if not self.gpu.active:
            log.warning("GPU offload inactive: %s", self.gpu.reason)
        return True

    def close(self) -> None:
        """Free the model and its context now (VRAM is not freed by `del`)."""
        if self._llm is not None:
            self._llm.close()
            self._llm = None
            self._model_path = None
            self._loaded_options = None

    def metadata(self) -> dict[str, str]:
        return dict(self._llm.metadata) if self._llm is not None else {}

    # --- generation ---------------------------------------------------------------------

    def prompt_tokens(self, spec: JobSpec) -> list[int]:
        """The job's prompt as tokens, through the model's chat template unless raw."""
        llm = self._require()
        return PromptFormatter(llm._model, llm.metadata).tokens(spec)

    def generate(
        self, spec: JobSpec, stop: StopSignal, on_progress: ProgressFn, on_text: TextFn
    ) -> GenerationResult:
        """Run one job. Raises Cancelled (with partial text passed to on_text) or EngineError."""
        llm = self._require()
        tokens = self.prompt_tokens(spec)
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise EngineError(
                f"the prompt is {len(tokens)} tokens; the context window is {n_ctx} "
                "(shorten the prompt or raise the context size)"
            )
        max_tokens = min(spec.max_tokens, n_ctx - len(tokens))
        self._stop = stop
        try:
            self._process_prompt(llm, tokens, stop, on_progress)
            return self._decode(llm, spec, tokens, max_tokens, stop, on_progress, on_text)
        finally:
            self._stop = None

    def _process_prompt(
        self, llm: llama_cpp.Llama, tokens: list[int], stop: StopSignal, on_progress: ProgressFn
    ) -> None:
        """Evaluate the prompt in batches, reporting progress; the abort callback stops it."""
        llm.reset()  # type: ignore[no-untyped-call]
        total = len(tokens)
        on_progress("prompt", 0, total)
        step = llm.n_batch
        # llama.cpp calls the abort callback between graph nodes: a Python callback there
        # costs a GIL round trip per node, so it is installed for prompt batches only
        # (long, worth interrupting); decoding checks the stop signal once per token.
        llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._abort_cb, None)
        try:
            for start in range(0, total, step):
                try:
                    llm.eval(tokens[start : start + step])
                except RuntimeError as exc:
                    reason = stop.reason()
                    if reason:
                        raise Cancelled(reason) from exc
                    raise EngineError(f"prompt processing failed: {exc}") from exc
                reason = stop.reason()
                if reason:
                    raise Cancelled(reason)
                on_progress("prompt", min(start + step, total), total)
        finally:
            llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._no_abort_cb, None)

    def _decode(
        self,
        llm: llama_cpp.Llama,
        spec: JobSpec,
        tokens: list[int],
        max_tokens: int,
        stop: StopSignal,
        on_progress: ProgressFn,
        on_text: TextFn,
    ) -> GenerationResult:
        llm.set_seed(spec.seed if spec.seed is not None else random.randrange(2**32))
        assembler = TextAssembler(spec.stop)
        pieces: list[str] = []
        eog = llama_cpp.llama_vocab_is_eog
        vocab = llm._model.vocab
        started = time.perf_counter()
        done = 0
        tps: float | None = None
        finish = "length" if max_tokens == spec.max_tokens else "context"
        on_progress("generating", 0, max_tokens)
        generator = llm.generate(
            tokens,
            top_k=spec.top_k,
            top_p=spec.top_p,
            min_p=spec.min_p,
            temp=spec.temperature,
            repeat_penalty=spec.repeat_penalty,
            reset=True,  # the prompt is already evaluated: generate() reuses it as a prefix
        )
        try:
            for token in generator:
                if eog(vocab, token):
                    finish = "stop"
                    break
                done += 1
                text = assembler.feed(llm.detokenize([token]))
                elapsed = time.perf_counter() - started
                tps = done / elapsed if elapsed > 0 else None
                eta = (max_tokens - done) / tps if tps else None
                if text:
                    pieces.append(text)
                cancel = on_text(text, done=done, total=max_tokens, tps=tps, eta=eta)
                reason = "cancelled" if cancel else stop.reason()
                if reason:
                    raise Cancelled(reason)
                if assembler.stopped:
                    finish = "stop"
                    break
                if done >= max_tokens:
                    break
        except RuntimeError as exc:
            reason = stop.reason()
            if reason:
                raise Cancelled(reason) from exc
            raise EngineError(f"decoding failed after {done} tokens: {exc}") from exc
        finally:
            generator.close()
        tail = assembler.finish()
        if tail:
            pieces.append(tail)
            on_text(tail, done=done, total=max_tokens, tps=tps, eta=0.0)
        return GenerationResult("".join(pieces), len(tokens), done, tps, finish)

    def _require(self) -> llama_cpp.Llama:
        if self._llm is None:
            raise EngineError("no model is loaded")
        return self._llm


def scan_model(path: Path) -> GgufLayout:
    """The file's GGUF layout; EngineError naming the file if it is truncated or corrupt."""
    try:
        return scan_gguf(path)
    except GgufError as exc:
        raise EngineError(f"model {str(path)!r} failed to load: {exc}") from exc
    except OSError as exc:
        raise EngineError(f"model {str(path)!r} cannot be read ({exc.strerror})") from exc


def load_error_message(path: Path, layout: GgufLayout, options: LoadOptions, exc: Exception) -> str:
    """Why llama.cpp refused the model, in words (it only says 'Failed to ...')."""
    text = str(exc)
    if "llama_context" in text:
        return (
            f"model {str(path)!r} loaded, but its context of {options.n_ctx} tokens could not be "
            "created: not enough memory? Lower PROMPTSPOOL_N_CTX or PROMPTSPOOL_N_GPU_LAYERS "
            f"({text})"
        )
    room = memory_room()
    if room is not None and room < layout.file_size:
        return (
            f"model {str(path)!r} failed to load: not enough memory (its weights are "
            f"{layout.file_size / 2**20:,.0f} MiB; about {room / 2**20:,.0f} MiB is free) ({text})"
        )
    arch = layout.architecture or "none recorded"
    return (
        f"model {str(path)!r} failed to load: llama.cpp refused it ({text}). Its architecture "
        f"is {arch!r}: this llama.cpp build may not support it, or the file is corrupt, or "
        "there is not enough memory for its weights"
    )


def memory_room() -> int | None:
    """Bytes this process could still allocate (free RAM, or its address-space limit); Linux."""
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    fields = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in (meminfo + status).splitlines()
        if line.endswith(" kB")
    }
    room = fields.get("MemAvailable")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY and "VmSize" in fields:
        left = max(0, limit - fields["VmSize"])
        room = left if room is None else min(room, left)
    return room


def describe(options: LoadOptions) -> dict[str, Any]:
    return {
        "n_gpu_layers": options.n_gpu_layers,
        "n_ctx": options.n_ctx,
        "n_batch": options.n_batch,
    }
