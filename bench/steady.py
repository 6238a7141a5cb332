"""One job's steady decode through the queue, default settings, vs raw Llama.generate at its
best thread count, on the peer benchmark's model (a real model's shape)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import llama_cpp
import psutil

from bench import peermodels
from bench.common import emit, in_fresh_process
from bench.peer import SAMPLING
from worker.jobs.spec import JobSpec
from worker.testing.harness import temp_queue

PROMPT_TOKENS = 128
TOKENS = 384


def raw_decode(model: Path, prompt: str, threads: int) -> float:
    """Llama.generate's tokens/s from its first token on (as the engine counts a job's)."""
    # Flash attention on: as the engine's default (llama.cpp's auto) resolves on the CPU.
    llm = llama_cpp.Llama(
        str(model), n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads,
        flash_attn=True, verbose=False,
    )  # fmt: skip
    try:
        llm.set_seed(1)
        count, started = 0, 0.0
        for _ in llm.generate(
            llm.tokenize(prompt.encode()), top_k=int(SAMPLING["top_k"]), top_p=SAMPLING["top_p"],
            min_p=SAMPLING["min_p"], temp=SAMPLING["temperature"],
            repeat_penalty=SAMPLING["repeat_penalty"],
        ):  # fmt: skip
            if count == 0:
                started = time.perf_counter()
            count += 1
            if count == TOKENS:
                break
        return (count - 1) / (time.perf_counter() - started)
    finally:
        llm.close()


def queued_decode(model: Path, prompt: str) -> float:
    """One job through a real queue with default settings: its tokens/s (engine-measured,
    from its first token), after a warm-up job."""
    with temp_queue() as q:
        spec = JobSpec(prompt=prompt, model=str(model), max_tokens=TOKENS, seed=1, raw=True,
                       **SAMPLING)  # fmt: skip
        [warm] = q.client.submit([spec.model_copy(update={"max_tokens": 4})])
        q.client.wait(warm, timeout=600)
        [job_id] = q.client.submit([spec])
        job = q.client.wait(job_id, timeout=600)
    return float(job.tokens_per_second or 0.0)


def run(vocab: str = "32k", rounds: int = 3) -> dict[str, Any]:
    """Raw at 1..physical cores threads (its best kept) and the queue, `rounds` times in turn."""
    vocab = os.environ.get("PROMPTSPOOL_STEADY_VOCAB", vocab)
    model = peermodels.model(vocab)
    [prompt] = peermodels.prompts(model, 1, PROMPT_TOKENS)
    cores = psutil.cpu_count(logical=False) or 1
    raw: dict[int, list[float]] = {t: [] for t in range(1, cores + 1)}
    queued: list[float] = []
    for _ in range(rounds):
        for threads, runs in raw.items():
            runs.append(in_fresh_process(raw_decode, model, prompt, threads))
        queued.append(queued_decode(model, prompt))
    best_threads = max(raw, key=lambda t: max(raw[t]))
    best_raw = max(raw[best_threads])
    return emit("steady_decode", {
        "model": model.name, "tokens": TOKENS,
        "raw_tps_by_threads": {t: [round(v, 1) for v in runs] for t, runs in raw.items()},
        "raw_best_threads": best_threads, "raw_best_tps": round(best_raw, 1),
        "queue_tps_runs": [round(v, 1) for v in queued],
        "ratio": round(max(queued) / best_raw, 3),
    })  # fmt: skip
