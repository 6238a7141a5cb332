"""`promptspool --self-test --model FILE`: server, worker, HTTP API and one real job submitted
through the API, in a throwaway home."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from worker.api.token import TokenFile
from worker.hosting.children import WorkerChild, free_loopback_port, wait_announced, worker_env
from worker.hosting.server import BundledServer
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.modelfile.check import check_model_file
from worker.queue import keys
from worker.queue.client import JobClient
from worker.queue.connection import QueueAddress
from worker.queue.replies import last_stream_id
from worker.settings import Settings

PROMPT = "Once upon a time"


def run_self_test(model: str, timeout: float = 120.0) -> int:
    """Prints the generated text and exits 0, or prints what failed and exits 1."""
    try:
        model_path = check_model_file(model)
    except ValueError as exc:
        print(f"self-test: {exc}", file=sys.stderr)
        return 1
    home = Path(tempfile.mkdtemp(prefix="promptspool-selftest-"))
    settings = Settings(home=home)
    server = BundledServer(settings.paths.ensure())
    log_path = settings.paths.logs / "selftest-worker.log"
    worker: WorkerChild | None = None
    api: WorkerChild | None = None
    started = time.perf_counter()
    try:
        info = server.start()
        address = QueueAddress.from_url(info.celery_url())
        with JobClient(address, settings) as client:
            after = last_stream_id(client.redis, keys.GLOBAL_EVENTS)
            base = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
            env = worker_env(address.celery_url, base, PROMPTSPOOL_HOME=str(home))
            worker = WorkerChild(env, args=["--loglevel", "ERROR"], log=log_path)
            worker.start()
            api_env = {**env, "PROMPTSPOOL_HTTP_PORT": str(free_loopback_port())}
            api = WorkerChild(api_env, log=log_path, role="api")
            api.start()
            if worker.wait_ready(client.redis, after, timeout) is None:
                print(f"self-test: the worker did not start\n{_tail(log_path)}", file=sys.stderr)
                return 1
            announced = wait_announced(client.redis, after, timeout, "api", lambda: api.running)
            if announced is None:
                print(f"self-test: the HTTP API did not start\n{_tail(log_path)}", file=sys.stderr)
                return 1
            url = str(announced.data["url"])
            ready_s = time.perf_counter() - started
            spec = JobSpec(prompt=PROMPT, model=str(model_path), max_tokens=48, seed=1)
            token = TokenFile(settings.paths.config).read()
            job_id = str(_post(f"{url}/generate", spec.model_dump(mode="json"), token)["task_id"])
            job = client.wait(job_id, timeout=timeout)
            if job.state is not JobState.succeeded:
                print(f"self-test: job {job.state.value}: {job.error}", file=sys.stderr)
                return 1
            print(PROMPT + job.output)
            print(
                f"self-test: ok (queue and API at {url} ready in {ready_s:.2f} s, "
                f"{job.completion_tokens} tokens at {job.tokens_per_second or 0:.0f} tok/s)"
            )
            return 0
    except TimeoutError as exc:
        print(f"self-test: {exc}\n{_tail(log_path)}", file=sys.stderr)
        return 1
    finally:
        if api is not None:
            api.stop(timeout=10)
        if worker is not None:
            worker.stop()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _post(url: str, body: dict[str, object], token: str) -> dict[str, object]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        answer: dict[str, object] = json.loads(reply.read())
    return answer


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
