"""The HTTP API against the queue itself: submit latency, token latency, many streams, memory.

Each figure runs a real queue, worker and `promptspool api` (`served_queue`) and emits one
record with its baseline measured in the same run: the same work done through JobClient and
the ledger directly. Figures of the other doors (the Batch API, the OpenAI endpoints) are
functions of the same kind over `served_queue`, registered in bench/__main__.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from httpx_sse import aconnect_sse, connect_sse

from bench.common import emit, summary
from worker.api.process import raise_open_file_limit
from worker.jobs.spec import JobSpec
from worker.queue import keys
from worker.queue.replies import as_text
from worker.testing.harness import ApiProcess, Queue, temp_queue

PROMPT = "Once upon a time"
T = TypeVar("T")


@contextmanager
def served_queue(
    model: Path, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[Queue, ApiProcess]]:
    """A temporary queue with `workers` workers and the HTTP API in front of it; `model` is
    the default model (more PROMPTSPOOL_* settings in `env`)."""
    settings = {"PROMPTSPOOL_MODEL": str(model), **(env or {})}
    with temp_queue(workers=workers, env=settings, prefix="psh-") as queue:
        api = ApiProcess.start(queue)
        try:
            yield queue, api
        finally:
            api.stop()


@contextmanager
def held(queue: Queue) -> Iterator[None]:
    """The queue paused inside the block (its jobs wait); after it, whatever is still queued
    is cancelled and the queue resumed."""
    queue.client.pause()
    try:
        yield
    finally:
        for job_id in queue.client.queue_positions():
            queue.client.cancel(job_id)
        queue.client.resume()


def _http(api: ApiProcess, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers=api.headers, timeout=120, **kwargs)


def _warm(queue: Queue, model: Path) -> None:
    """Load the model in the worker before anything is timed."""
    [job_id] = queue.client.submit([JobSpec(prompt=PROMPT, model=str(model), max_tokens=2)])
    queue.client.wait(job_id, timeout=120)


def submit_latency(model: Path, count: int = 500) -> dict[str, Any]:
    """POST /generate until the 202, against JobClient.submit in this process (the baseline),
    alternately, while the queue is paused: the worker takes none of the jobs."""
    spec = JobSpec(prompt=PROMPT, model=str(model), max_tokens=4)
    body = {"prompt": PROMPT, "max_tokens": 4}
    over_http: list[float] = []
    in_process: list[float] = []
    with served_queue(model) as (queue, api), held(queue), _http(api) as http:
        queue.client.submit([spec])  # connect and warm both paths
        http.post("/generate", json=body).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            queue.client.submit([spec])
            in_process.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            answer = http.post("/generate", json=body)
            over_http.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 202:
                raise RuntimeError(f"POST /generate answered {answer.status_code}: {answer.text}")
    through, direct = summary(over_http), summary(in_process)
    ratio = round(through["p50"] / direct["p50"], 2)
    return emit("http_submit_latency_ms", {"http": through, "jobclient_submit": direct,
                                           "p50_ratio": ratio})  # fmt: skip


def _produced_at(queue: Queue, job_id: str) -> dict[str, float]:
    """Each tokens event's id on the job's stream -> when its first token was produced."""
    entries: Any = queue.redis.xrange(keys.events(job_id))
    produced = {}
    for entry_id, fields in entries:
        data = json.loads(fields[b"d"])
        if data.get("type") == "tokens":
            produced[as_text(entry_id)] = float(data["t0"])
    return produced


def _submit_held(queue: Queue, spec: JobSpec) -> str:
    """Queue the job while the queue is paused: its reader is following before it starts."""
    queue.client.pause()
    [job_id] = queue.client.submit([spec])
    return job_id


def reader_latencies(queue: Queue, spec: JobSpec) -> list[float]:
    """The baseline of every token latency: ms from each tokens event's production (`t0`) to
    a reader of the job's stream in Redis having it (as the app and `watch` read), for one
    job queued while the queue is paused and run once the reader follows it."""
    job_id = _submit_held(queue, spec)
    latencies = []
    for number, event in enumerate(queue.client.events(job_id)):
        received = time.time()
        if number == 0:
            queue.client.resume()
        if event.type == "tokens":
            latencies.append((received - float(event.data["t0"])) * 1000)
        if event.state is not None and event.state.finished:
            break
    return latencies


def token_latency(model: Path, jobs: int = 20, max_tokens: int = 500) -> dict[str, Any]:
    """From the moment the worker produced a token (the `t0` of its tokens event) to the moment
    an SSE client has it; the baseline is a reader of the job's stream in Redis (as the app
    and the CLI follow jobs). Each job is queued paused, so its reader is there first."""
    over_sse: list[float] = []
    direct: list[float] = []
    with served_queue(model) as (queue, api), _http(api) as http:
        _warm(queue, model)
        for seed in range(1, jobs + 1):
            spec = JobSpec(prompt=PROMPT, model=str(model), max_tokens=max_tokens, seed=seed)
            job_id = _submit_held(queue, spec)
            arrived: dict[str, float] = {}
            with connect_sse(http, "GET", f"/tasks/{job_id}/stream") as source:
                for number, event in enumerate(source.iter_sse()):
                    if number == 0:
                        queue.client.resume()  # the stream is open: now the job may run
                    if event.event == "token":
                        arrived[event.id] = time.time()
            produced = _produced_at(queue, job_id)
            over_sse += [(arrived[i] - produced[i]) * 1000 for i in arrived]

            direct += reader_latencies(queue, spec)
    return emit("sse_token_latency_ms", {"sse": summary(over_sse), "redis_reader": summary(direct)})


async def _stream_jobs(api: ApiProcess, bodies: list[dict[str, Any]]) -> tuple[float, list[str]]:
    """Each body POSTed and its task followed over SSE to the end, all at once: seconds from
    the first POST to the end of the last stream, and the task ids."""
    limits = httpx.Limits(max_connections=len(bodies) * 2)
    async with httpx.AsyncClient(
        base_url=api.url, headers=api.headers, timeout=300, limits=limits
    ) as http:

        async def one(body: dict[str, Any]) -> str:
            answer = await http.post("/generate", json=body)
            task_id = str(answer.json()["task_id"])
            last = ""
            async with aconnect_sse(http, "GET", f"/tasks/{task_id}/stream") as source:
                async for event in source.aiter_sse():
                    last = event.event
            if last != "complete":
                raise RuntimeError(f"task {task_id}'s stream ended with {last!r}")
            return task_id

        started = time.perf_counter()
        ids = await asyncio.gather(*(one(body) for body in bodies))
        return time.perf_counter() - started, list(ids)


def concurrent_streams(
    model: Path,
    clients: int = 32,
    max_tokens: int = 200,
    rounds: int = 3,
    n_threads: int | None = None,
) -> dict[str, Any]:
    """`clients` programs each submitting a job and following it over SSE at once: tokens/s
    through HTTP against the same jobs (same seeds, so the same tokens) submitted with
    JobClient and read from the ledger once done. The two take turns, `rounds` times each;
    the best round of each counts (the machine's other work only ever slows one down).
    `n_threads`: the worker's decode threads (None: its default)."""
    bodies = [
        {"prompt": PROMPT, "max_tokens": max_tokens, "seed": seed} for seed in range(1, clients + 1)
    ]
    http_runs: list[float] = []
    direct_runs: list[float] = []
    same = True
    env = {} if n_threads is None else {"PROMPTSPOOL_N_THREADS": str(n_threads)}
    with served_queue(model, env=env) as (queue, api):
        defaults = {**queue.settings.job_defaults(), "model": str(model)}  # as the API's jobs
        specs = [JobSpec.model_validate({**defaults, **body}) for body in bodies]
        _warm(queue, model)
        for _ in range(rounds):
            started = time.perf_counter()
            direct_ids = [queue.client.submit([spec])[0] for spec in specs]
            outputs = [queue.client.wait(job_id, timeout=600).output for job_id in direct_ids]
            direct_s = time.perf_counter() - started
            tokens = sum(job.completion_tokens for job in queue.client.get_many(direct_ids))
            direct_runs.append(tokens / direct_s)
            http_s, http_ids = asyncio.run(_stream_jobs(api, bodies))
            done = queue.client.get_many(http_ids, with_output=True)
            http_runs.append(sum(job.completion_tokens for job in done) / http_s)
            same = same and [job.output for job in done] == outputs
    http_tps, direct_tps = max(http_runs), max(direct_runs)
    return emit("sse_concurrent_streams", {
        "clients": clients, "n_threads": n_threads, "tokens_per_round": tokens,
        "same_outputs": same,
        "http_tokens_per_s": round(http_tps), "jobclient_tokens_per_s": round(direct_tps),
        "ratio": round(http_tps / direct_tps, 3),
        "rounds_http": [round(r) for r in http_runs],
        "rounds_jobclient": [round(r) for r in direct_runs],
    })  # fmt: skip


async def _hold_streams(api: ApiProcess, ids: list[str], measure: Callable[[], T]) -> T:
    """Open an SSE stream for each task, wait until every one has its first event, call
    `measure` while they are all open, then close them."""
    all_open, release = asyncio.Event(), asyncio.Event()
    opened = 0
    limits = httpx.Limits(max_connections=len(ids) + 8, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=api.url, headers=api.headers, timeout=300, limits=limits
    ) as http:

        async def hold(task_id: str) -> None:
            nonlocal opened
            async with aconnect_sse(http, "GET", f"/tasks/{task_id}/stream") as source:
                events = source.aiter_sse()  # kept: a collected iterator closes the response
                await anext(events)
                opened += 1
                if opened == len(ids):
                    all_open.set()
                await release.wait()

        holders = [asyncio.create_task(hold(task_id)) for task_id in ids]
        waiter = asyncio.create_task(all_open.wait())
        done, _ = await asyncio.wait([waiter, *holders], return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            release.set()
            await asyncio.gather(*holders)  # raises the failed stream's error
            raise RuntimeError("a stream ended before all were open")
        result = measure()
        release.set()
        await asyncio.gather(*holders)
        return result


def memory_with_open_streams(model: Path, streams: int = 1000) -> dict[str, Any]:
    """The API process's RSS with `streams` SSE streams open (their jobs queued, the queue
    paused, so every stream stays open), against its RSS idle in the same run."""
    spec = JobSpec(prompt=PROMPT, model=str(model), max_tokens=4)
    raise_open_file_limit()  # this process holds the other end of every stream
    with served_queue(model) as (queue, api), held(queue), _http(api) as http:
        process = psutil.Process(api.process.pid)
        http.get("/tasks", params={"limit": 1}).raise_for_status()  # warm
        ids = queue.client.submit([spec] * streams)
        idle_rss, idle_fds = process.memory_info().rss, process.num_fds()

        def measure() -> tuple[int, int, int, int]:
            clients = int(queue.redis.info("clients")["connected_clients"])
            sockets = len(process.net_connections(kind="tcp"))
            return process.memory_info().rss, process.num_fds(), sockets, clients

        started = time.perf_counter()
        rss, fds, sockets, server_clients = asyncio.run(_hold_streams(api, ids, measure))
        open_s = time.perf_counter() - started
    mib = 1024 * 1024
    return emit("sse_open_streams_memory", {
        "streams": streams, "api_rss_mib": round(rss / mib, 1),
        "api_rss_idle_mib": round(idle_rss / mib, 1),
        "kib_per_stream": round((rss - idle_rss) / streams / 1024, 1),
        "api_tcp_connections": sockets, "api_fds": fds, "api_fds_idle": idle_fds,
        "server_clients": server_clients,
        "seconds_to_open_all": round(open_s, 2),
    })  # fmt: skip
