"""One loaded model and one llama.cpp context whose KV cache holds a sequence per job slot."""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import _internals

from worker.engine.api import GpuStatus, LoadOptions
from worker.engine.hardware import gpu_status, thread_counts
from worker.engine.markers import is_marker
from worker.engine.prompting import PromptFormatter
from worker.jobs.spec import JobSpec

log = logging.getLogger(__name__)


@functools.cache
def _init_backend() -> None:
    """Once per process, as Llama() does; llama.cpp's own log lines only from errors up."""
    llama_cpp.llama_backend_init()
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)


def flash_attn_type(options: LoadOptions) -> int:
    """LoadOptions.flash_attn as llama.cpp's enum. None: llama.cpp's own default, auto (on
    wherever the model's layers can run it, as for llama-server). On the CPU that is on:
    for a real model's shape it is as fast for one job and ~15 % faster for 32 (a 110M
    model with 64-wide heads, 2 cores), though a toy with 8-wide heads (stories260K)
    decodes at half speed."""
    if options.flash_attn is None:
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    if options.flash_attn:
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    return llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED


class BatchContext:
    """A model, its context (n_seq_max = slots, one KV stream of n_ctx tokens per slot) and a
    reusable llama_batch. Used by one thread at a time; `close()` frees all of it now.

    Slot `i` is llama.cpp sequence id `i`: a job in that slot owns KV stream `i` alone, so
    removing its cells (`forget`) leaves every other job's cache untouched.
    """

    def __init__(
        self,
        path: Path,
        options: LoadOptions,
        slots: int,
        keep_loading: Callable[[float], bool] | None = None,
    ) -> None:
        """Load the model and make the context. `keep_loading(progress)` is asked as the
        weights load (0 to 1); False stops the load, which then raises ValueError."""
        _init_backend()
        self.path = path
        self.options = options
        self.slots = slots
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0x7FFFFFFF if options.n_gpu_layers == -1 else options.n_gpu_layers
        progress = None
        if keep_loading is not None:
            # Kept referenced while llama.cpp may call it (the load below).
            progress = llama_cpp.llama_progress_callback(lambda p, _data: keep_loading(p))
            mparams.progress_callback = progress
        self.model = _internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
        del progress
        try:
            cparams = llama_cpp.llama_context_default_params()
            cparams.n_ctx = options.n_ctx * slots
            cparams.n_batch = max(options.n_batch, slots)
            cparams.n_ubatch = min(cparams.n_batch, 512)
            cparams.n_seq_max = slots
            cparams.kv_unified = False
            self.n_threads, self.n_threads_batch = thread_counts(options)
            cparams.n_threads = self.n_threads
            cparams.n_threads_batch = self.n_threads_batch
            cparams.flash_attn_type = flash_attn_type(options)
            cparams.no_perf = True
            self.context = _internals.LlamaContext(model=self.model, params=cparams, verbose=False)
        except BaseException:
            self.model.close()  # type: ignore[no-untyped-call]
            raise
        self.ctx = self.context.ctx
        self.memory = self.context.memory
        self.vocab = self.model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(self.ctx))
        self.n_batch = int(llama_cpp.llama_n_batch(self.ctx))
        self.gpu: GpuStatus = gpu_status(self.model.model, options)
        self.prompts = PromptFormatter(self.model, self.model.metadata())
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._token = self._batch.token
        self._pos = self._batch.pos
        self._n_seq_id = self._batch.n_seq_id
        self._seq_id = self._batch.seq_id
        self._logits = self._batch.logits
        self._piece = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes | None] = {}
        self._no_abort = llama_cpp.ggml_abort_callback()
        self._abort: Any = None  # the installed ctypes callback, kept alive while installed
        self.size = 0  # tokens in the batch being built
        self._reading_prompt = True

    # --- tokens -------------------------------------------------------------------------

    def prompt_tokens(self, spec: JobSpec) -> list[int]:
        return self.prompts.tokens(spec)

    def piece(self, token: int) -> bytes | None:
        """The token's bytes, or None for an end-of-generation token; cached per token.

        Markers render as nothing (b""): control, unknown and unused tokens, as in
        Llama.detokenize, and tags such as Gemma's <start_of_image> or <|tool_call> that a
        GGUF may type as text (see `markers`). They count as generated tokens.
        """
        if token in self._pieces:
            return self._pieces[token]
        value: bytes | None = None
        if not llama_cpp.llama_vocab_is_eog(self.vocab, token):
            value = self._render(token)
            if is_marker(llama_cpp.llama_vocab_get_attr(self.vocab, token), value):
                value = b""
        self._pieces[token] = value
        return value

    def _render(self, token: int) -> bytes:
        """llama.cpp's text for the token (special=False: control tokens are empty)."""
        n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece, 256, 0, False)
        if n >= 0:
            return self._piece.raw[:n]
        buf = ctypes.create_string_buffer(-n)  # longer than the buffer: ask again with room
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    # --- one decode step ----------------------------------------------------------------

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token of sequence `seq` at position `pos`; returns its batch index."""
        i = self.size
        self._token[i] = token
        self._pos[i] = pos
        self._n_seq_id[i] = 1
        self._seq_id[i][0] = seq
        self._logits[i] = logits
        self.size = i + 1
        return i

    def decode(self, reading_prompt: bool) -> int:
        """Run the batch built since the last decode and wait for its results (on a GPU,
        llama_decode returns before the kernels finish); llama_decode's return code.

        llama.cpp gives any batch of more than one token its prompt thread count; a step
        that only generates (one token per job) runs with the generation thread count.
        """
        if reading_prompt != self._reading_prompt:
            self._reading_prompt = reading_prompt
            batch_threads = self.n_threads_batch if reading_prompt else self.n_threads
            llama_cpp.llama_set_n_threads(self.ctx, self.n_threads, batch_threads)
        self._batch.n_tokens = self.size
        self.size = 0
        rc = int(llama_cpp.llama_decode(self.ctx, self._batch))
        llama_cpp.llama_synchronize(self.ctx)  # releases the GIL while it waits
        return rc

    def set_abort(self, callback: Any | None) -> None:
        """Install a ggml_abort_callback for the next decodes (None removes it)."""
        self._abort = callback
        llama_cpp.llama_set_abort_callback(self.ctx, callback or self._no_abort, None)

    def attach_sampler(self, seq: int, chain: int) -> bool:
        """Let llama.cpp run sequence `seq`'s sampler chain inside the decode graph (backend
        sampling, experimental in llama.cpp): llama_sampler_sample then returns the token
        sampled there. False when the chain cannot run there (it then runs on the CPU).
        It replaces the sequence's previous chain; the next decode re-plans graph memory."""
        return bool(llama_cpp.llama_set_sampler(self.ctx, seq, chain))

    def forget(self, seq: int) -> None:
        """Drop every cached token of sequence `seq` (its slot is then empty)."""
        llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self.context.close()  # type: ignore[no-untyped-call]
        self.model.close()  # type: ignore[no-untyped-call]
