"""Decode speed: one stream vs raw llama-cpp-python (and llama-bench), batches of queued jobs
vs raw batched decoding (and llama-batched-bench), and time to first token under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import llama_cpp

from bench import native
from bench.common import emit, in_fresh_process, percentile
from worker.engine.api import LoadOptions, StopSignal
from worker.engine.batch_engine import BatchEngine
from worker.engine.context import BatchContext
from worker.engine.hardware import thread_counts
from worker.jobs.spec import JobSpec
from worker.queue.events import read_events
from worker.queue.keys import events as events_key
from worker.testing.harness import temp_queue

PROMPT = "Once upon a time"
# About 100 tokens, so that prompt processing is part of what a batch does.
STORY = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park with her friend Tom. One day, they saw a big red ball under a tree. Lily wanted to "
    "play with the ball, but Tom said it was not theirs. They looked around and saw a sad "
    "little boy. Lily said"
)


def _raw_generate(
    model: Path, spec: JobSpec, n_ctx: int, flash_attn: bool
) -> tuple[str, int, float]:
    """Llama.generate from a fresh model: (text, tokens, seconds from the first token on)."""
    threads, threads_batch = thread_counts(LoadOptions())  # the engine's, for a fair match
    llm = llama_cpp.Llama(
        str(model), n_ctx=n_ctx, n_batch=512, n_gpu_layers=-1, flash_attn=flash_attn,
        n_threads=threads, n_threads_batch=threads_batch, verbose=False,
    )  # fmt: skip
    vocab = llm._model.vocab
    tokens: list[int] = []
    started = 0.0
    try:
        assert spec.seed is not None
        llm.set_seed(spec.seed)
        for token in llm.generate(
            llm.tokenize(PROMPT.encode()), top_k=spec.top_k, top_p=spec.top_p, min_p=spec.min_p,
            temp=spec.temperature, repeat_penalty=spec.repeat_penalty,
        ):  # fmt: skip
            if not tokens:
                started = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            llm.detokenize([token])
            tokens.append(token)
            if len(tokens) >= spec.max_tokens:
                break
        seconds = time.perf_counter() - started
        return llm.detokenize(tokens).decode(errors="replace"), len(tokens), seconds
    finally:
        llm.close()


def _raw_generate_all(
    model: Path, specs: list[JobSpec], n_ctx: int, flash_attn: bool
) -> list[tuple[str, int, float]]:
    return [_raw_generate(model, spec, n_ctx, flash_attn) for spec in specs]


def single_stream(
    model: Path, seeds: int = 8, max_tokens: int = 1000, rounds: int = 2
) -> dict[str, Any]:
    """BatchEngine with one slot vs Llama.generate: same model, seeds and tokens, interleaved."""
    n_ctx = 2048
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    options = LoadOptions(n_ctx=n_ctx, n_batch=512)
    flash = options.flash_attn if options.flash_attn is not None else True  # auto: on
    specs = [
        JobSpec(prompt=PROMPT, model=str(model), max_tokens=max_tokens, seed=s)
        for s in range(1, seeds + 1)
    ]
    ours: list[Any] = []
    raw_tokens, raw_s = 0, 0.0
    padded: list[float] = []
    same = True
    for _ in range(rounds):
        results = _one_at_a_time(options, 1, specs)
        ours += results
        # A job alone on a worker with 8 slots: its batch is padded to two rows.
        lone = _one_at_a_time(options, 8, specs[:2])
        padded.append(sum(r.tokens_per_second or 0 for r in lone) / len(lone))
        raw = in_fresh_process(_raw_generate_all, model, specs, n_ctx, flash)
        for (text, count, seconds), result in zip(raw, results, strict=True):
            raw_tokens, raw_s = raw_tokens + count, raw_s + seconds
            same = same and text == result.text
    ours_tps, raw_tps = _tokens_per_s(ours), raw_tokens / raw_s
    # llama-bench's tg128 generates 128 tokens into an empty 128-token context. Both matter
    # on the CPU: attention over a deeper KV cache is most of a small model's time, and
    # without flash attention V is stored transposed, so a larger cache is read with a
    # larger stride (slow-q4km: 4.4 ms/token in a 256-token context, 5.0 in 4096). So the
    # comparison is made in the same conditions.
    like_tg128 = LoadOptions(n_ctx=256, n_batch=512)
    tg = _one_at_a_time(like_tg128, 1, [s.model_copy(update={"max_tokens": 128}) for s in specs])
    ours_tg128 = _tokens_per_s(tg)
    tg128 = native.tg128(model, thread_counts(options)[0], native.flash_setting(options))
    return emit("single_stream", {
        "model": model.name, "gpu": gpu, "flash_attn": flash, "jobs": seeds * rounds,
        "tokens": sum(r.completion_tokens for r in ours), "same_text_as_llama_generate": same,
        "ours_tokens_per_s": round(ours_tps, 1), "llama_generate_tokens_per_s": round(raw_tps, 1),
        "ratio_vs_llama_generate": round(ours_tps / raw_tps, 4),
        "alone_in_8_slots_tokens_per_s": round(sum(padded) / len(padded), 1),
        "ours_128_tokens_per_s": round(ours_tg128, 1), "llama_bench_tg128": tg128,
        "ratio_vs_llama_bench": round(ours_tg128 / tg128, 4) if tg128 else None,
        "target_ratio_vs_llama_bench": 0.95,
    })  # fmt: skip


def _tokens_per_s(results: list[Any]) -> float:
    """Tokens over decoding seconds (each job's from its first token on), all jobs together."""
    tokens = sum(r.completion_tokens for r in results)
    return float(tokens / sum(r.completion_tokens / (r.tokens_per_second or 1) for r in results))


def _one_at_a_time(options: LoadOptions, slots: int, specs: list[JobSpec]) -> list[Any]:
    engine = BatchEngine(options, slots)
    try:
        return [engine.submit(spec, StopSignal(threading.Event())).wait() for spec in specs]
    finally:
        engine.close()


def raw_batched_decode(model: Path, sequences: int, pp: int = 128, tg: int = 128) -> float:
    """Generation tokens/s of bare llama_decode calls, one token per sequence per step.

    What llama-batched-bench's S_TG measures (no sampling, no text), from Python, same run.
    """
    ctx = BatchContext(model, LoadOptions(n_ctx=pp + tg, n_batch=512), sequences)
    try:
        for seq in range(sequences):
            for pos in range(pp):
                ctx.add(1 + (pos + seq) % 50, pos, seq, pos == pp - 1)
                if ctx.size == ctx.n_batch:
                    ctx.decode(True)
            if ctx.size:
                ctx.decode(True)
        started = time.perf_counter()
        for step in range(tg):
            for seq in range(sequences):
                ctx.add(1 + (step + seq) % 50, pp + step, seq, True)
            if ctx.decode(False) != 0:
                raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(ctx.ctx)
        return sequences * tg / (time.perf_counter() - started)
    finally:
        ctx.close()


def _first_token_at(queue: Any, job_id: str) -> float | None:
    for event in read_events(queue.redis, {events_key(job_id): "0-0"}, count=10_000):
        if event.type == "tokens":
            return float(event.data["t0"])
    return None


# What the queued_jobs workers and the engine_steps engine load.
QUEUE_OPTIONS = LoadOptions(n_ctx=512, n_batch=512)


def queued_jobs(
    model: Path, jobs: int, slots: int, max_tokens: int = 128, backend_sampling: bool = False
) -> dict[str, Any]:
    """`jobs` jobs queued at once on a worker with `slots` batch slots: tokens/s and TTFT."""
    env = {"PROMPTSPOOL_PARALLEL_JOBS": str(slots), "PROMPTSPOOL_N_CTX": str(QUEUE_OPTIONS.n_ctx),
           "PROMPTSPOOL_N_BATCH": str(QUEUE_OPTIONS.n_batch),
           "PROMPTSPOOL_BACKEND_SAMPLING": str(backend_sampling).lower()}  # fmt: skip
    with temp_queue(env=env) as q:
        [warm] = q.client.submit([JobSpec(prompt=PROMPT, model=str(model), max_tokens=4)])
        q.client.wait(warm, timeout=300)
        specs = [
            JobSpec(prompt=STORY, model=str(model), max_tokens=max_tokens, seed=i)
            for i in range(1, jobs + 1)
        ]
        submitted = time.time()
        ids = q.client.submit(specs)
        finished = [q.client.wait(job_id, timeout=1800) for job_id in ids]
        first = [_first_token_at(q, job_id) for job_id in ids]
    tokens = sum(job.completion_tokens for job in finished)
    ended = max(job.finished_at or 0.0 for job in finished)
    ttft = [(t - submitted) * 1000 for t in first if t is not None]
    generating_from = min(t for t in first if t is not None)
    return {
        "tokens": tokens,
        "wall_tokens_per_s": round(tokens / (ended - submitted), 1),
        "generation_tokens_per_s": round(tokens / (ended - generating_from), 1),
        "ttft_ms_p50": round(percentile(ttft, 50), 1),
        "ttft_ms_p95": round(percentile(ttft, 95), 1),
    }


def engine_steps(
    model: Path, jobs: int, max_tokens: int = 128, backend_sampling: bool = False
) -> dict[str, Any]:
    """`jobs` jobs on a BatchEngine alone (no queue): where its generation steps' time went."""
    engine = BatchEngine(QUEUE_OPTIONS, jobs, backend_sampling=backend_sampling)
    try:
        engine.ensure_model(model)
        before = engine.stats.as_dict()
        tickets = [
            engine.submit(JobSpec(prompt=STORY, model=str(model), max_tokens=max_tokens, seed=i),
                          StopSignal(threading.Event()))
            for i in range(1, jobs + 1)
        ]  # fmt: skip
        waiters = [threading.Thread(target=ticket.wait) for ticket in tickets]
        for waiter in waiters:
            waiter.start()
        for waiter in waiters:
            waiter.join()
        window = engine.stats.since(before)
    finally:
        engine.close()
    busy = window["decode_s"] + window["host_s"]
    return {
        "engine_tokens_per_s": round(window["tokens"] / busy, 1),
        "engine_decode_ms_per_step": window["decode_ms_per_step"],
        "engine_host_ms_per_step": window["host_ms_per_step"],
    }


def aggregate(
    model: Path, counts: tuple[int, ...] = (1, 8, 32), backend_sampling: bool = False
) -> list[dict[str, Any]]:
    """For 1, 8, 32 queued jobs: one batch slot per job vs one slot, and raw batched decoding;
    the engine alone, and llama-batched-bench when it is at hand."""
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    batched_bench = native.batched_tg(
        model, list(counts), thread_counts(QUEUE_OPTIONS), native.flash_setting(QUEUE_OPTIONS)
    )
    records = []
    for jobs in counts:
        batched = queued_jobs(model, jobs, slots=jobs, backend_sampling=backend_sampling)
        serial = queued_jobs(model, jobs, slots=1) if jobs > 1 else batched
        raw = in_fresh_process(raw_batched_decode, model, jobs)
        alone = engine_steps(model, jobs, backend_sampling=backend_sampling)
        native_tg = batched_bench.get(jobs)
        records.append(emit("queued_jobs", {
            "model": model.name, "gpu": gpu, "backend_sampling": backend_sampling,
            "jobs": jobs, "slots": jobs, **batched,
            "one_slot_wall_tokens_per_s": serial["wall_tokens_per_s"],
            "one_slot_ttft_ms_p50": serial["ttft_ms_p50"],
            "one_slot_ttft_ms_p95": serial["ttft_ms_p95"],
            "speedup_vs_one_slot": round(
                batched["wall_tokens_per_s"] / serial["wall_tokens_per_s"], 2
            ),
            "raw_batched_decode_tokens_per_s": round(raw, 1),
            "ratio_vs_raw_batched_decode": round(batched["generation_tokens_per_s"] / raw, 4),
            **alone,
            "llama_batched_bench_tg": native_tg,
            "ratio_vs_llama_batched_bench": (
                round(batched["generation_tokens_per_s"] / native_tg, 4) if native_tg else None
            ),
            "target_ratio_vs_llama_batched_bench": 0.8 if jobs == 32 else None,
        }))  # fmt: skip
    return records
