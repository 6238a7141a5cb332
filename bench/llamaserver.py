"""llama.cpp's llama-server as a child process, and a batch of concurrent /completion requests."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.hosting.children import free_loopback_port

# Logged at the default verbosity (common's system_info line with both counts is trace-level).
THREADS_LINE = re.compile(r"threadpool init, n_threads = (\d+)")


@dataclass
class LlamaServer:
    """A running llama-server on 127.0.0.1:port; its output goes to `log`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def post(self, path: str, body: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"llama-server {path}: {response.status} {data[:300]!r}")
            reply: dict[str, Any] = json.loads(data)
            return reply
        finally:
            connection.close()

    def healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def settings(self, threads: int | None, flash: str | None) -> dict[str, Any]:
        """Its thread counts (as logged) and flash attention (as asked; its log does not say
        what `auto` became). Without -tb, llama.cpp reads prompts with n_threads too."""
        logged = THREADS_LINE.search(self.log.read_text(errors="replace"))
        count = int(logged[1]) if logged else threads
        return {"threads": count, "threads_batch": count, "flash_attn": flash or "auto"}


@contextmanager
def llama_server(
    binary: Path, model: Path, args: list[str], timeout: float = 300
) -> Iterator[LlamaServer]:
    """llama-server for `model` with `args`, once /health answers 200 (the model is loaded)."""
    port = free_loopback_port()
    with tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False) as log:
        command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), *args]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(process, port, Path(log.name))
    try:
        _wait_healthy(server, timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        server.log.unlink(missing_ok=True)


def _wait_healthy(server: LlamaServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.healthy():
        if server.process.poll() is not None or time.monotonic() > deadline:
            tail = server.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"llama-server did not get ready:\n{tail}")
        time.sleep(0.2)


@dataclass
class Completion:
    """One /completion reply and when (perf_counter) it arrived."""

    reply: dict[str, Any]
    at: float


def concurrent_completions(
    server: LlamaServer, bodies: list[dict[str, Any]]
) -> tuple[float, list[Completion]]:
    """POST every body to /completion at once, one thread each: (start time, replies)."""
    results: list[Completion | BaseException | None] = [None] * len(bodies)

    def one(index: int) -> None:
        try:
            reply = server.post("/completion", bodies[index])
            results[index] = Completion(reply, time.perf_counter())
        except BaseException as exc:  # reported by the caller
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [r for r in results if isinstance(r, Completion)]
    if len(done) != len(bodies):
        raise RuntimeError(f"llama-server requests failed: {results}")
    return started, done
