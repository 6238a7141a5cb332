"""`promptspool --self-test --model FILE`: server, worker and one real job in a throwaway home."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker import keys
from worker.client import JobClient
from worker.connection import QueueAddress
from worker.events import read_events
from worker.jobs import JobState
from worker.redisio import last_stream_id
from worker.serve import worker_command
from worker.server import BundledServer
from worker.settings import Settings
from worker.spec import JobSpec, check_model_file

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
    worker: subprocess.Popen[bytes] | None = None
    log_path = settings.paths.logs / "selftest-worker.log"
    started = time.perf_counter()
    try:
        info = server.start()
        address = QueueAddress.from_url(info.celery_url())
        with JobClient(address, settings) as client, log_path.open("wb") as log:
            after = last_stream_id(client.redis, keys.GLOBAL_EVENTS)
            env = _worker_env(home, address)
            worker = subprocess.Popen(
                [*worker_command(), "--loglevel", "ERROR"], env=env, stdout=log, stderr=log
            )
            if not _wait_ready(client, after, worker, timeout):
                print(f"self-test: the worker did not start\n{_tail(log_path)}", file=sys.stderr)
                return 1
            ready_s = time.perf_counter() - started
            spec = JobSpec(prompt=PROMPT, model=str(model_path), max_tokens=48, seed=1)
            [job_id] = client.submit([spec])
            job = client.wait(job_id, timeout=timeout)
            if job.state is not JobState.succeeded:
                print(f"self-test: job {job.state.value}: {job.error}", file=sys.stderr)
                return 1
            print(PROMPT + job.output)
            print(
                f"self-test: ok (queue ready in {ready_s:.2f} s, "
                f"{job.completion_tokens} tokens at {job.tokens_per_second or 0:.0f} tok/s)"
            )
            return 0
    except TimeoutError as exc:
        print(f"self-test: {exc}\n{_tail(log_path)}", file=sys.stderr)
        return 1
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _worker_env(home: Path, address: QueueAddress) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env.update(PROMPTSPOOL_HOME=str(home), PROMPTSPOOL_REDIS_URL=address.celery_url)
    return env


def _wait_ready(
    client: JobClient, after: str, worker: subprocess.Popen[bytes], timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        for event in read_events(client.redis, {keys.GLOBAL_EVENTS: after}, block_ms=250):
            after = event.id
            if event.type == "worker" and event.data.get("state") == "ready":
                return True
    return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
