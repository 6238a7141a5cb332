"""A job's llama.cpp sampler chain, built as Llama.generate builds it: same seed, same tokens."""

from __future__ import annotations

import ctypes
import math
import random
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import llama_cpp
import numpy as np

from worker.jobs.spec import JobSpec

# Llama(last_n_tokens_size=64): how many recent tokens the repeat penalty looks back on.
PENALTY_LAST_N = 64
# Above this vocabulary size the penalty is cheaper in Python (<= 64 logits) than in
# llama.cpp's sampler (a hash lookup for every candidate: ~3.5 ns each here).
NATIVE_PENALTY_MAX_VOCAB = 4096
# The largest top-k that the chain is given a shortlist of candidates for (llama.cpp sorts
# more than 128 another way; such jobs get every candidate, as before).
SHORTLIST_MAX_K = 128
SAMPLE_POINTS = 1024  # logits looked at to guess a shortlist's threshold
# Below this vocabulary llama.cpp's own pass over every candidate is as fast or faster: a
# shortlist's numpy calls run on caches that the decode has just flushed (one job on a
# 32k vocabulary: 236 vs 139 us a token; 128k: 287 vs 297; 262k: 400 vs 468).
SHORTLIST_MIN_VOCAB = 65_536
LONGEST_SHORTLIST = 2048  # a job's last threshold is used again while it lets in k to this
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])  # llama_token_data
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


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
_logits_address = _holding_gil(
    "llama_get_logits_ith", [ctypes.c_void_p, ctypes.c_int32], ctypes.c_void_p
)
_CANDIDATES_P = ctypes.POINTER(llama_cpp.llama_token_data_array)
_apply_holding_gil = _holding_gil("llama_sampler_apply", [ctypes.c_void_p, _CANDIDATES_P], None)
_accept_holding_gil = _holding_gil("llama_sampler_accept", [ctypes.c_void_p, ctypes.c_int32], None)


def shortlist(
    logits: np.ndarray, k: int, guess: float | None = None
) -> tuple[np.ndarray, float] | None:
    """Ascending ids of every logit at least as large as the k-th largest (so the k largest
    and all their ties), and usually a few hundred more, with the threshold that picked
    them: one vectorised pass over the logits. The threshold is `guess` (the job's last
    one) if it lets in k to LONGEST_SHORTLIST, else one estimated from SAMPLE_POINTS of
    the logits, else the exact k-th largest. None when there is no such list (NaN logits).
    """
    if guess is not None:
        picked = np.flatnonzero(logits >= guess)
        if k <= len(picked) <= LONGEST_SHORTLIST:
            return picked, guess
    n = len(logits)
    stride = n // SAMPLE_POINTS
    if stride > 1:
        sample = logits[::stride]
        rank = min(len(sample), -(-4 * k // stride) + 1)  # ~4k logits expected above it
        threshold = float(np.partition(sample, len(sample) - rank)[len(sample) - rank])
        picked = np.flatnonzero(logits >= threshold)
        if len(picked) >= k:
            return picked, threshold
    threshold = float(np.partition(logits, n - k)[n - k])
    picked = np.flatnonzero(logits >= threshold)
    return (picked, threshold) if len(picked) >= k else None


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
        self.shortlist_k = 0  # > 0: the chain gets this job's shortlist, not every candidate
        self._threshold: float | None = None  # the last shortlist's
        self._row = ctypes.c_float * n_vocab  # one row of logits, as a ctypes array type
        self._candidates = np.zeros(0, _TOKEN_DATA)  # reused: the shortlist, as llama.cpp's
        self._array = llama_cpp.llama_token_data_array()  # ... llama_token_data_array of it
        self._data: Any = None  # the buffer's address, as llama_token_data *
        if not native_penalty and n_vocab >= SHORTLIST_MIN_VOCAB:
            if spec.temperature == 0.0:
                self.shortlist_k = 1  # greedy: the largest logit (the first, on a tie)
            elif 0 < spec.top_k <= SHORTLIST_MAX_K:
                self.shortlist_k = spec.top_k
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
        if self._penalty == 1.0 and not self.shortlist_k:
            return int(sample(self._chain, ctx, index))
        logits = self._row.from_address(_logits_address(ctx, index))
        if self._counts:
            self._penalize(logits)
        token = self._sample_shortlist(logits, release_gil) if self.shortlist_k else None
        if token is None:
            token = int(sample(self._chain, ctx, index))
        if self._penalty != 1.0:
            self._remember(token)
        return token

    def _sample_shortlist(self, logits: Any, release_gil: bool) -> int | None:
        """llama_sampler_sample on the job's shortlist instead of every candidate.

        The chain starts with top-k (or is greedy), so the k largest logits are all it ever
        keeps: given them and a few more, with ids in vocabulary order as llama.cpp lists
        them, it picks the same token, without filling and sorting a list of the whole
        vocabulary (~0.7 ms a token for 262k tokens). None: no shortlist, use every one.
        """
        view = np.frombuffer(logits, np.float32)
        found = shortlist(view, self.shortlist_k, self._threshold)
        if found is None:
            return None
        ids, self._threshold = found
        array = self._fill(ids, view)
        if release_gil:
            llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
        else:
            _apply_holding_gil(self._chain, ctypes.byref(array))
        if not 0 <= array.selected < array.size:
            raise RuntimeError(f"the sampler chain selected {array.selected} of {array.size}")
        token = int(array.data[array.selected].id)
        if release_gil:
            llama_cpp.llama_sampler_accept(self._chain, token)
        else:
            _accept_holding_gil(self._chain, token)
        return token

    def _fill(self, ids: np.ndarray, view: np.ndarray) -> Any:
        """The reused llama_token_data_array, holding `ids` with their logits (p = 0)."""
        count = len(ids)
        if count > len(self._candidates):
            self._candidates = np.zeros(max(count, 256), _TOKEN_DATA)
            self._data = self._candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
        part = self._candidates[:count]
        part["id"] = ids
        part["logit"] = view[ids]
        part["p"] = 0.0
        array = self._array
        array.data = self._data  # each time: a sampler is free to point it elsewhere
        array.size, array.selected, array.sorted = count, -1, False
        return array

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
