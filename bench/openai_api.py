"""The OpenAI doors over HTTP: chat streaming latency to the official client, and a 10,000-line
batch from upload to every job queued; each against the queue itself in the same run."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import openai

from bench.common import emit, summary
from bench.http_api import PROMPT, _produced_at, _warm, held, reader_latencies, served_queue
from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.testing.harness import ApiProcess, Queue, wait_until


def _client(api: ApiProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.url + "/v1", api_key=api.token, max_retries=0, timeout=300)


def chat_token_latency(model: Path, jobs: int = 20, max_tokens: int = 500) -> dict[str, Any]:
    """From the moment the worker produced a token (its tokens event's `t0`) to the moment the
    `openai` client yields its chunk, streaming /v1/chat/completions; the baseline is a
    reader of the job's stream in Redis. The queue is paused until the stream is open (its
    first chunk, the role, comes at once), so no token is replayed from history."""
    over_openai: list[float] = []
    direct: list[float] = []
    messages: Any = [{"role": "user", "content": PROMPT}]
    with served_queue(model) as (queue, api):
        _warm(queue, model)
        client = _client(api)
        for seed in range(1, jobs + 1):
            queue.client.pause()
            stream = client.chat.completions.create(
                model=model.stem, messages=messages, max_tokens=max_tokens, seed=seed, stream=True
            )
            arrivals: list[float] = []
            job_id = ""
            for number, chunk in enumerate(stream):
                if number == 0:
                    job_id = chunk.id.split("-", 1)[1]
                    queue.client.resume()
                elif chunk.choices and chunk.choices[0].delta.content:
                    arrivals.append(time.time())
            produced = list(_produced_at(queue, job_id).values())
            over_openai += [(a - p) * 1000 for a, p in zip(arrivals, produced, strict=True)]

            spec = JobSpec(prompt=PROMPT, model=str(model), max_tokens=max_tokens, seed=seed)
            direct += reader_latencies(queue, spec)
    figures = {"openai_stream": summary(over_openai), "redis_reader": summary(direct)}
    return emit("chat_stream_token_latency_ms", figures)


def _batch_file(lines: int, model: str) -> bytes:
    rows = (
        {
            "custom_id": f"request-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"{PROMPT} {n}"}],
                "max_tokens": 8,
            },
        }
        for n in range(lines)
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def _queued(queue: Queue) -> int:
    return int(queue.redis.zcard(keys.QUEUE))


def batch_upload(model: Path, lines: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    """A batch file of `lines` chat requests: seconds from the start of the upload
    (files.create) to every job queued (batches.create answered in_progress), with the queue
    paused so that no job runs meanwhile. Baseline: the same prompts as job specs through
    JobClient.submit in this process (what `promptspool submit` does)."""
    data = _batch_file(lines, model.stem)
    specs = [JobSpec(prompt=f"{PROMPT} {n}", model=str(model), max_tokens=8)
             for n in range(lines)]  # fmt: skip
    over_api: list[float] = []
    direct: list[float] = []
    with served_queue(model) as (queue, api):
        client = _client(api)
        for _ in range(rounds):
            with held(queue):
                started = time.perf_counter()
                uploaded = client.files.create(file=("batch.jsonl", io.BytesIO(data)),
                                               purpose="batch")  # fmt: skip
                batch = client.batches.create(input_file_id=uploaded.id,
                                              endpoint="/v1/chat/completions",
                                              completion_window="24h")  # fmt: skip
                over_api.append(time.perf_counter() - started)
                if batch.status != "in_progress" or _queued(queue) != lines:
                    raise RuntimeError(f"batch {batch.id} is {batch.status}: {batch.errors}")
                client.batches.cancel(batch.id)
            wait_until(lambda: _queued(queue) == 0, 120, "the cancelled batch's jobs to leave")
            with held(queue):
                started = time.perf_counter()
                queue.client.submit(specs)
                direct.append(time.perf_counter() - started)
            wait_until(lambda: _queued(queue) == 0, 120, "the submitted jobs to be cancelled")
    figures = {"lines": lines, "bytes": len(data), "api": summary(over_api),
               "submit": summary(direct)}  # fmt: skip
    return emit("batch_upload_s", figures)
