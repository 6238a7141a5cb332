"""A job's llama.cpp sampler chain, built as Llama.generate builds it: same seed, same tokens."""

from __future__ import annotations

import ctypes
import math
import random
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import llama_cpp

from worker.jobs.spec import JobSpec

# Llama(last_n_tokens_size=64): how many recent tokens the repeat penalty looks back on.
PENALTY_LAST_N = 64
# Above this vocabulary size the penalty is cheaper in Python (<= 64 logits) than in
# llama.cpp's sampler (a hash lookup for every candidate: ~3.5 ns each here).
NATIVE_PENALTY_MAX_VOCAB = 4096


def _holding_gil(name: str, argtypes: list[Any], restype: Any) -> Any:
    """libllama's function `name`, called without releasing the GIL.

    ctypes releases the GIL around every foreign call; when the call is short (a sampler
    chain on a small vocabulary takes a few microseconds) the caller then waits to get it
    back behind whatever thread took it meanwhile, once per job per step.
    """
    lib = llama_cpp.llama_cpp._lib
    function = ctypes.PyDLL(lib._name, handle=lib._handle)[name]
    function.argtypes = argtypes
    function.restype = restype
    return function


# Only for logits that are ready: the caller has waited for the decode (llama_synchronize,
# which releases the GIL), so that no thread waits for a GPU while holding the GIL.
_sample_holding_gil = _holding_gil(
    "llama_sampler_sample", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32], ctypes.c_int32
)
_logits_holding_gil = _holding_gil(
    "llama_get_logits_ith", [ctypes.c_void_p, ctypes.c_int32], ctypes.POINTER(ctypes.c_float)
)


def job_seed(spec: JobSpec) -> int:
    """The job's seed, or a fresh random one when it has none."""
    return spec.seed if spec.seed is not None else random.randrange(2**32)


class SamplerChain:
    """Owns one `llama_sampler` chain; `close()` frees it (the finaliser is only a fallback).

    The order is Llama._init_sampler's: the repeat penalty, then greedy when the
    temperature is 0, else top-k, typical (1.0: off), top-p, min-p, temperature and the
    seeded distribution. Like Llama.generate, the penalty sees generated tokens only.

    llama.cpp's penalties sampler looks every one of the vocabulary's candidates up in a
    hash map: with a 32k vocabulary that is ~80 % of the chain's time (115 of 140 us).
    For a large vocabulary the penalty is applied here instead, to the logits of the (at
    most 64) recent tokens, before the chain runs. The float32 arithmetic is the same (a
    float32 product or quotient computed in double precision rounds to the same float32),
    so the tokens are too. `native_penalty` forces one way (None: by vocabulary size).

    `in_graph`: a chain for llama.cpp's backend sampling (llama_set_sampler), which runs it
    inside the decode's graph: the native penalty, and no typical sampler (at 1.0 a no-op).
    """

    def __init__(
        self,
        spec: JobSpec,
        seed: int,
        n_vocab: int,
        native_penalty: bool | None = None,
        in_graph: bool = False,
    ) -> None:
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(params)
        if not chain:
            raise MemoryError("llama_sampler_chain_init failed")
        self._chain: int | None = chain
        self.seed = seed
        self.n_vocab = n_vocab
        self._penalty = ctypes.c_float(spec.repeat_penalty).value  # as llama.cpp stores it
        self._recent: deque[int] = deque(maxlen=PENALTY_LAST_N)
        self._counts: dict[int, int] = {}
        if in_graph:  # llama.cpp runs the chain in its graph: every sampler must be its own
            native_penalty = True
        elif native_penalty is None:
            native_penalty = n_vocab <= NATIVE_PENALTY_MAX_VOCAB
        if native_penalty:
            self._penalty = 1.0  # the chain's own sampler does it
            penalties = llama_cpp.llama_sampler_init_penalties(
                n_vocab, PENALTY_LAST_N, spec.repeat_penalty, 0.0, 0.0
            )
            self._add(penalties)
        if spec.temperature == 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        self._add(llama_cpp.llama_sampler_init_top_k(spec.top_k))
        if not in_graph:  # typical at 1.0 changes nothing, and has no in-graph version
            self._add(llama_cpp.llama_sampler_init_typical(1.0, 1))
        self._add(llama_cpp.llama_sampler_init_top_p(spec.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_min_p(spec.min_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(spec.temperature))
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    @property
    def handle(self) -> int | None:
        """The llama_sampler chain pointer (None once closed)."""
        return self._chain

    def _add(self, sampler: int) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)  # the chain owns it now

    def sample(self, ctx: int, index: int, release_gil: bool = False) -> int:
        """Sample from the logits of batch entry `index`; the token then counts as recent.

        The decode must be finished (llama_synchronize). The GIL is kept unless
        `release_gil` (for sampling on several threads at once).
        """
        sample = llama_cpp.llama_sampler_sample if release_gil else _sample_holding_gil
        if self._penalty == 1.0:
            return int(sample(self._chain, ctx, index))
        if self._counts:
            self._penalize(_logits_holding_gil(ctx, index))
        token = int(sample(self._chain, ctx, index))
        self._remember(token)
        return token

    def _penalize(self, logits: Any) -> None:
        """llama_sampler_penalties_apply with frequency and presence penalties of 0."""
        penalty = self._penalty
        for token in self._counts:
            value = logits[token]
            if value <= 0:
                logits[token] = value * penalty
            elif penalty == 0.0:
                logits[token] = math.inf  # C float division by zero
            else:
                logits[token] = value / penalty

    def _remember(self, token: int) -> None:
        """llama_sampler_penalties_accept: a window of the last PENALTY_LAST_N tokens."""
        recent, counts = self._recent, self._counts
        if len(recent) == PENALTY_LAST_N:
            old = recent[0]
            if counts[old] == 1:
                del counts[old]
            else:
                counts[old] -= 1
        recent.append(token)
        counts[token] = counts.get(token, 0) + 1

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:
        self.close()


def _sample_all(ctx: int, jobs: list[tuple[SamplerChain, int]]) -> list[int]:
    return [sampler.sample(ctx, index, release_gil=True) for sampler, index in jobs]


class SamplerPool:
    """Samples the sequences of one decode on several threads (llama_sampler_sample releases
    the GIL): with a large vocabulary each sample is tens of microseconds of C, and a batch
    of 32 would otherwise keep the GPU idle for a millisecond or more per step.
    """

    MIN_JOBS = 8
    MIN_VOCAB = 8192

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sampler")

    def worth_it(self, jobs: int, n_vocab: int) -> bool:
        return jobs >= self.MIN_JOBS and n_vocab >= self.MIN_VOCAB

    def sample(self, ctx: int, jobs: list[tuple[SamplerChain, int]]) -> list[int]:
        """Each (sampler, batch index) pair's token, in order."""
        # The decode has finished (BatchContext.decode waits for it). Put its outputs in
        # batch order now, on this thread: then the sampling threads only read the logits.
        _logits_holding_gil(ctx, jobs[0][1])
        parts = [jobs[i :: self.threads] for i in range(self.threads)]
        results = [self._pool.submit(_sample_all, ctx, part) for part in parts if part]
        tokens = [0] * len(jobs)
        for i, future in enumerate(results):
            tokens[i :: self.threads] = future.result()
        return tokens

    def close(self) -> None:
        self._pool.shutdown()
