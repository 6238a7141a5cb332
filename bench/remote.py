"""Remote endpoints: 200 jobs against a rate-limited remote, and remote jobs beside a busy
local engine."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import peermodels
from bench.common import emit, stories_model
from worker.endpoints.config import Endpoint
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import ApiProcess, Queue, start_queue, temp_queue, wait_until

JOBS = int(os.environ.get("PROMPTSPOOL_REMOTE_JOBS", "200"))
RATE = 120.0  # requests a minute the remote's API takes per token
BURST = 2  # what its limiter lets through at once (a second's worth: 120/60)


@contextmanager
def promptspool_remote(model: Path, rate: float) -> Iterator[tuple[Queue, ApiProcess]]:
    """Another PromptSpool queue with a worker on `model` and its API limited to `rate`."""
    home = Path(tempfile.mkdtemp(prefix="psr-", dir="/tmp"))
    queue = start_queue(home, PROMPTSPOOL_MODEL_DIRS=json.dumps([str(model.parent)]),
                        PROMPTSPOOL_PARALLEL_JOBS="4")  # fmt: skip
    try:
        queue.start_worker()
        api = ApiProcess.start(queue, PROMPTSPOOL_HTTP_RATE_LIMIT_RPM=str(rate))
        try:
            yield queue, api
        finally:
            api.stop()
    finally:
        queue.close()
        shutil.rmtree(home, ignore_errors=True)


def paced(pace_ourselves: bool) -> dict[str, Any]:
    """JOBS jobs on a remote whose API takes RATE requests a minute: by its 429s and
    Retry-After alone, or paced by the endpoint's own requests_per_minute as well."""
    model = stories_model()
    with promptspool_remote(model, RATE) as (remote, api), temp_queue(workers=0) as local:
        endpoint = Endpoint(name="remote", base_url=api.url + "/v1", api_key=api.token,
                            max_concurrency=4,
                            requests_per_minute=RATE if pace_ourselves else None)  # fmt: skip
        local.configure(endpoints=[endpoint], remote_max_tries=100)
        local.start_worker(remote=True)
        name = f"remote/{model.stem}"
        specs = [JobSpec(prompt=f"Story {n}:", model=name, raw=True, max_tokens=8,
                         temperature=0.0) for n in range(JOBS)]  # fmt: skip
        started = time.monotonic()
        ids = local.client.submit(specs)
        wait_until(lambda: all(j.state.finished for j in local.client.get_many(ids)),
                   timeout=JOBS * 60 / RATE * 3 + 120, what="the remote jobs")  # fmt: skip
        elapsed = time.monotonic() - started
        jobs = local.client.get_many(ids)
        reached = len(remote.client.list())  # each request that got through is a job there
    minimum = (JOBS - BURST) * 60 / RATE
    limited = sum(1 for j in jobs for a in j.attempts if a.error and "(429)" in a.error)
    return {
        "jobs": JOBS,
        "rate_per_min": RATE,
        "paced_by_endpoint_setting": pace_ourselves,
        "succeeded": sum(1 for j in jobs if j.state is JobState.succeeded),
        "lost": sum(1 for j in jobs if j.state is not JobState.succeeded),
        "duplicated": reached - JOBS,
        "answered_429": limited,
        "seconds": round(elapsed, 1),
        "minimum_s": round(minimum, 1),
        "over_minimum": round(elapsed / minimum - 1, 3),
    }


class _Streamer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that streams a fixed answer at a steady pace: a
    remote whose work happens elsewhere (no compute here)."""

    pieces = 30_000  # ten minutes: until the job is cancelled
    interval_s = 0.02

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for n in range(self.pieces):
                chunk = {"choices": [{"delta": {"content": f" w{n}"}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(self.interval_s)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the job was cancelled: its stream closed

    def log_message(self, *_: Any) -> None:
        pass


def _local_tokens_per_second(q: Queue, model: Path, texts: list[str]) -> float:
    specs = [JobSpec(prompt=t, model=str(model), raw=True, max_tokens=256, seed=n)
             for n, t in enumerate(texts)]  # fmt: skip
    ids = q.client.submit(specs)
    jobs = [q.client.wait(i, timeout=900) for i in ids]
    first = min(j.started_at or 0.0 for j in jobs)
    last = max(j.finished_at or 0.0 for j in jobs)
    return sum(j.completion_tokens for j in jobs) / (last - first)


def _wait_running(q: Queue, ids: list[str]) -> None:
    def streaming() -> bool:
        return all(j.state is JobState.running for j in q.client.get_many(ids))

    wait_until(streaming, timeout=60, what="the remote jobs to stream")


def beside_local(rounds: int = 3) -> dict[str, Any]:
    """The local engine's tokens/s on 4 jobs at once, alone and with 8 remote jobs streaming
    from an endpoint elsewhere; best of `rounds` each, interleaved."""
    model = peermodels.model("32k")
    texts = peermodels.prompts(model, 4)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streamer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PROMPTSPOOL_PARALLEL_JOBS": "4", "PROMPTSPOOL_N_CTX": "512"}
    alone: list[float] = []
    beside: list[float] = []
    try:
        with temp_queue(workers=1, env=env) as q:
            url = f"http://127.0.0.1:{server.server_address[1]}/v1"
            q.configure(endpoints=[Endpoint(name="far", base_url=url, max_concurrency=8)])
            q.start_worker(remote=True)
            _local_tokens_per_second(q, model, texts[:1])  # load the model
            for _ in range(rounds):
                alone.append(_local_tokens_per_second(q, model, texts))
                remote_ids = q.client.submit(
                    [JobSpec(prompt="go", model="far/any") for _ in range(8)]
                )
                _wait_running(q, remote_ids)
                beside.append(_local_tokens_per_second(q, model, texts))
                for job_id in remote_ids:
                    q.client.cancel(job_id)
                for job_id in remote_ids:
                    q.client.wait(job_id, timeout=60)
    finally:
        server.shutdown()
    best_alone, best_beside = max(alone), max(beside)
    return {
        "local_alone_tok_s": round(best_alone, 1),
        "local_beside_8_remote_tok_s": round(best_beside, 1),
        "slowdown": round(1 - best_beside / best_alone, 3),
        "rounds": rounds,
        "remote_pieces_per_s": round(8 / _Streamer.interval_s),
    }


def run() -> list[dict[str, Any]]:
    return [
        emit("remote_rate_limited", paced(pace_ourselves=False)),
        emit("remote_paced", paced(pace_ourselves=True)),
        emit("remote_beside_local", beside_local()),
    ]
