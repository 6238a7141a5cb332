"""PromptSpool end to end vs llama.cpp's llama-server: same build, model, prompts, jobs."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import llama_cpp

from bench import llamabuild, native, peermodels
from bench.common import emit
from bench.llamaserver import LlamaServer, concurrent_completions, llama_server
from worker.engine.api import LoadOptions
from worker.engine.hardware import thread_counts
from worker.engine.stats import BatchStats
from worker.jobs.spec import JobSpec
from worker.queue.client import JobClient
from worker.testing.harness import temp_queue, wait_until

N_CTX = 512  # per job, both sides
PROMPT_TOKENS = 128
MAX_TOKENS = 128
# The same sampling both sides (JobSpec's defaults), a seed per job.
SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _threads() -> int | None:
    value = os.environ.get("PROMPTSPOOL_PEER_THREADS")
    return int(value) if value else None


def _flash() -> str | None:
    """PROMPTSPOOL_PEER_FLASH: "on" or "off" for both sides; None: each side's default."""
    value = os.environ.get("PROMPTSPOOL_PEER_FLASH", "").lower()
    return value if value in ("on", "off") else None


def server_args(jobs: int) -> list[str]:
    """llama-server's options: one slot of N_CTX tokens per job, continuous batching."""
    args = ["--parallel", str(jobs), "-cb", "-c", str(N_CTX * jobs), "-ngl", "99"]
    if (threads := _threads()) is not None:
        args += ["-t", str(threads), "-tb", str(threads)]
    if (flash := _flash()) is not None:
        args += ["-fa", flash]
    return args


def server_bodies(texts: list[str]) -> list[dict[str, Any]]:
    return [
        {"prompt": text, "n_predict": MAX_TOKENS, "cache_prompt": False, "ignore_eos": True,
         "seed": seed, **SAMPLING}
        for seed, text in enumerate(texts, start=1)
    ]  # fmt: skip


def time_server(server: LlamaServer, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """The bodies as concurrent /completion requests: tokens/s from the first request to the
    last reply."""
    started, replies = concurrent_completions(server, bodies)
    seconds = max(r.at for r in replies) - started
    tokens = sum(int(r.reply["tokens_predicted"]) for r in replies)
    return {
        "tokens": tokens, "seconds": round(seconds, 3), "tps": tokens / seconds,
        "prompt_tokens": sum(int(r.reply["tokens_evaluated"]) for r in replies),
    }  # fmt: skip


def queue_env(jobs: int) -> dict[str, str]:
    env = {"PROMPTSPOOL_PARALLEL_JOBS": str(jobs), "PROMPTSPOOL_N_CTX": str(N_CTX)}
    if (threads := _threads()) is not None:
        env["PROMPTSPOOL_N_THREADS"] = str(threads)
    if (flash := _flash()) is not None:
        env["PROMPTSPOOL_FLASH_ATTN"] = str(flash == "on").lower()
    return env


def job_specs(model: Path, texts: list[str]) -> list[JobSpec]:
    return [
        JobSpec(prompt=text, model=str(model), max_tokens=MAX_TOKENS, seed=seed, raw=True,
                **SAMPLING)
        for seed, text in enumerate(texts, start=1)
    ]  # fmt: skip


def time_queue(client: JobClient, specs: list[JobSpec]) -> dict[str, Any]:
    """The specs as jobs submitted at once: tokens/s from the submission to the last job's
    finish (as the worker recorded it)."""
    submitted = time.time()
    ids = client.submit(specs)
    finished = [client.wait(job_id, timeout=3600) for job_id in ids]
    tokens = sum(job.completion_tokens for job in finished)
    seconds = max(job.finished_at or 0.0 for job in finished) - submitted
    return {
        "tokens": tokens, "seconds": round(seconds, 3), "tps": tokens / seconds,
        "prompt_tokens": sum(job.prompt_tokens for job in finished),
        "finish_reasons": dict(Counter(job.finish_reason for job in finished)),
    }  # fmt: skip


def worker_batch_stats(client: JobClient, tokens: int) -> BatchStats:
    """The worker's BatchStats from its heartbeat, once it counts at least `tokens` tokens
    generated in its generation steps (a heartbeat is written every few seconds)."""
    found: list[BatchStats] = []

    def counted() -> bool:
        found[:] = [BatchStats(**w["batch"]) for w in client.workers() if "batch" in w]
        return bool(found) and found[0].tokens >= tokens

    wait_until(counted, timeout=60, what=f"a heartbeat counting {tokens} tokens")
    return found[0]


def _spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with every run's tokens/s (a shared machine's noise only slows)."""
    best = max(runs, key=lambda r: float(r["tps"]))
    return {**best, "tps_runs": [round(r["tps"], 1) for r in runs]}


def row(binary: Path, vocab: str, model: Path, jobs: int, rounds: int = 3) -> dict[str, Any]:
    """One figure: the same `jobs` prompts on llama-server and on a queue, both started and
    warm, `rounds` times in turn (server, queue, server, queue, ...).

    The figure is the median of the rounds' ratios: each pair of runs is a minute apart at
    most, so a machine whose speed drifts (a shared VM moves by 10 to 20 % from one minute
    to the next) slows both sides of a pair alike. While one side runs the other idles.
    """
    texts = peermodels.prompts(model, jobs, PROMPT_TOKENS)
    bodies, specs = server_bodies(texts), job_specs(model, texts)
    server_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    with (
        llama_server(binary, model, server_args(jobs)) as server,
        temp_queue(env=queue_env(jobs)) as q,
    ):
        server.post("/completion", {**bodies[0], "n_predict": 4, "seed": 0})
        [warm] = q.client.submit([specs[0].model_copy(update={"max_tokens": 4, "seed": 0})])
        q.client.wait(warm, timeout=600)
        # A job's first token is sampled as its prompt ends, not in a generation step.
        before = worker_batch_stats(q.client, q.client.get(warm).completion_tokens - 1)
        for _ in range(rounds):
            server_runs.append(time_server(server, bodies))
            our_runs.append(time_queue(q.client, specs))
        generated = sum(run["tokens"] - jobs for run in our_runs)
        after = worker_batch_stats(q.client, before.tokens + generated)
        server_settings = server.settings(_threads(), _flash())
    window = after.since(before.as_dict())
    options = LoadOptions(n_ctx=N_CTX, n_threads=_threads())
    ratios = [o["tps"] / t["tps"] for o, t in zip(our_runs, server_runs, strict=True)]
    theirs, ours = _spread(server_runs), _spread(our_runs)
    return emit("peer", {
        "vocab": vocab, "model": model.name, "jobs": jobs, "rounds": rounds,
        "gpu": bool(llama_cpp.llama_supports_gpu_offload()),
        "server_tps": round(theirs["tps"], 1), "promptspool_tps": round(ours["tps"], 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_runs": [round(r, 3) for r in ratios],
        "ratio_best": round(ours["tps"] / theirs["tps"], 3),
        "server": {**{k: v for k, v in theirs.items() if k != "tps"}, **server_settings},
        "promptspool": {
            **{k: v for k, v in ours.items() if k != "tps"},
            "threads": thread_counts(options)[0], "threads_batch": thread_counts(options)[1],
            "flash_attn": _flash() or native.flash_setting(options),
            # The worker's own account of its generation steps (BatchStats) over the rounds.
            "host_us_per_token": round(window["host_s"] * 1e6 / max(1, window["tokens"]), 1),
            "host_ms_per_step": window["host_ms_per_step"],
            "decode_ms_per_step": window["decode_ms_per_step"],
            "tokens_per_step": window["tokens_per_step"],
        },
    })  # fmt: skip


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| vocab | jobs | llama-server tok/s | PromptSpool tok/s | ratio (median) "
        "| ratio of each round | host µs per token |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    lines += [
        f"| {r['vocab']} | {r['jobs']} | {r['server_tps']} | {r['promptspool_tps']} "
        f"| {r['ratio']} | {', '.join(f'{x:.2f}' for x in r['ratio_runs'])} "
        f"| {r['promptspool']['host_us_per_token']} |"
        for r in records
    ]
    return "\n".join(lines)


def _vocab_rows(binary: Path, vocab: str, counts: list[int], rounds: int) -> list[dict[str, Any]]:
    """The rows of one vocabulary; none (and a message why) if its model cannot be made or run,
    as a 262k Gemma tokenizer in a llama-architecture model may not be."""
    try:
        model = peermodels.model(vocab)
        return [row(binary, vocab, model, jobs, rounds) for jobs in counts]
    except Exception as exc:  # one vocabulary failing leaves the others' figures
        emit("peer_skipped", {"vocab": vocab, "reason": f"{type(exc).__name__}: {exc}"[:2000]})
        return []


def run() -> list[dict[str, Any]]:
    """Every chosen row; the markdown table on stderr at the end.

    Rows: PROMPTSPOOL_PEER_JOBS (default 1,8,32) x PROMPTSPOOL_PEER_VOCABS (default 32k,128k;
    262k is offered too). Both sides use their default threads and flash attention unless
    PROMPTSPOOL_PEER_THREADS (a count) or PROMPTSPOOL_PEER_FLASH (on/off) sets them for both.
    PROMPTSPOOL_PEER_ROUNDS (default 5) is how many times each row runs on each side, in
    turn; the row's ratio is the median of the rounds' ratios.
    """
    counts = [int(n) for n in _env_list("PROMPTSPOOL_PEER_JOBS", "1,8,32")]
    vocabs = _env_list("PROMPTSPOOL_PEER_VOCABS", "32k,128k")
    unknown = set(vocabs) - set(peermodels.VOCABS)
    if unknown:
        sys.exit(f"bench: unknown vocabularies {sorted(unknown)}; known: {list(peermodels.VOCABS)}")
    binary = llamabuild.bin_dir() / "llama-server"
    rounds = int(os.environ.get("PROMPTSPOOL_PEER_ROUNDS", "5"))
    records = [r for vocab in vocabs for r in _vocab_rows(binary, vocab, counts, rounds)]
    print(table(records), file=sys.stderr, flush=True)
    return records
