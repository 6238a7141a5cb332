"""Streaming overhead: a job's tokens/s through the queue vs raw llama-cpp-python, same model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import llama_cpp

from bench.common import emit, in_fresh_process
from worker.engine.api import LoadOptions
from worker.engine.hardware import thread_counts
from worker.jobs.spec import JobSpec
from worker.testing.harness import temp_queue

PROMPT = "Once upon a time"
SAMPLING: dict[str, Any] = {
    "temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1
}  # fmt: skip


def raw_generate(
    model: Path, seeds: list[int], max_tokens: int, n_ctx: int, n_threads: int | None
) -> tuple[int, float]:
    """Tokens and seconds of decoding with Llama.generate (timed from the first token on)."""
    threads, threads_batch = thread_counts(LoadOptions(n_threads=n_threads))  # the worker's
    llm = llama_cpp.Llama(
        str(model),
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads_batch,
        verbose=False,
    )
    vocab = llm._model.vocab
    total_tokens, total_s = 0, 0.0
    try:
        for seed in seeds:
            llm.set_seed(seed)
            count, started = 0, 0.0
            for token in llm.generate(
                llm.tokenize(PROMPT.encode()), top_k=SAMPLING["top_k"], top_p=SAMPLING["top_p"],
                min_p=SAMPLING["min_p"], temp=SAMPLING["temperature"],
                repeat_penalty=SAMPLING["repeat_penalty"],
            ):  # fmt: skip
                if count == 0:
                    started = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                llm.detokenize([token])
                count += 1
                if count >= max_tokens:
                    break
            total_s += time.perf_counter() - started
            total_tokens += count
    finally:
        llm.close()
    return total_tokens, total_s


def run(
    model: Path,
    seeds: int = 12,
    max_tokens: int = 1000,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    **queue_env: str,
) -> dict[str, Any]:
    """A queue's tokens/s ÷ Llama.generate's, both with `n_threads` (None: the default)."""
    seed_list = list(range(1, seeds + 1))
    if n_threads is not None:
        queue_env["PROMPTSPOOL_N_THREADS"] = str(n_threads)
    with temp_queue(env={"PROMPTSPOOL_N_CTX": str(n_ctx), **queue_env}) as q:
        # Warm the worker (model load) outside the measurement.
        [warm] = q.client.submit([JobSpec(prompt=PROMPT, model=str(model), max_tokens=4)])
        q.client.wait(warm, timeout=120)
        specs = [
            JobSpec(prompt=PROMPT, model=str(model), max_tokens=max_tokens, seed=s, **SAMPLING)
            for s in seed_list
        ]
        ids = q.client.submit(specs)
        jobs = [q.client.wait(job_id, timeout=300) for job_id in ids]
    raw_tokens, raw_s = in_fresh_process(
        raw_generate, model, seed_list, max_tokens, n_ctx, n_threads
    )
    queue_tokens = sum(job.completion_tokens for job in jobs)
    # Generation time as the worker measured it (prompt processing excluded on both sides).
    queue_s = sum(
        job.completion_tokens / job.tokens_per_second for job in jobs if job.tokens_per_second
    )
    wall_s = sum((job.finished_at or 0) - (job.started_at or 0) for job in jobs)
    raw_tps = raw_tokens / raw_s
    queue_tps = queue_tokens / queue_s
    return emit("streaming_overhead", {
        "model": model.name,
        "decode_threads": thread_counts(LoadOptions(n_threads=n_threads))[0],
        "jobs": len(jobs),
        "tokens_raw": raw_tokens,
        "tokens_queue": queue_tokens,
        "same_tokens": raw_tokens == queue_tokens,
        "raw_tokens_per_s": round(raw_tps, 1),
        "queue_tokens_per_s": round(queue_tps, 1),
        "ratio": round(queue_tps / raw_tps, 4),
        "queue_wall_tokens_per_s": round(queue_tokens / wall_s, 1),
        "wall_ratio": round(queue_tokens / wall_s / raw_tps, 4),
        "target_ratio": 0.95,
    })  # fmt: skip
