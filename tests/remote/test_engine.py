"""RemoteEngine on its own, against a small real OpenAI-compatible server: its slot is kept
while it waits its turn, and it streams what the server sends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from worker.endpoints.config import Endpoint
from worker.engine.api import GenerationResult, StopSignal
from worker.jobs.spec import JobSpec
from worker.remote.engine import RemoteEngine
from worker.remote.limits import EndpointSlots, Pacer
from worker.settings import Settings
from worker.testing.harness import Queue, wait_until


class _Answers(BaseHTTPRequestHandler):
    """Streams three pieces and the usage, as llama-server does."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in ("Once", " upon", " a time"):
            chunk = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {"choices": [{"delta": {}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 3}}  # fmt: skip
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_a_job_keeps_its_slot_while_it_waits_its_turn(queue: Queue, server: str) -> None:
    lab = Endpoint(name="lab", base_url=server, max_concurrency=1, requests_per_minute=40)
    settings = Settings(endpoints=[lab])
    engine = RemoteEngine(lambda: settings, queue.redis, lease_s=0.3)
    Pacer(queue.redis).reserve("lab", 40)  # another request just started: this one waits 1.5 s
    notes: list[str] = []
    waiting = threading.Event()
    result: list[GenerationResult] = []

    def progress(phase: str, done: int, total: int, **extra: Any) -> None:
        if phase == "waiting":
            notes.append(str(extra["note"]))
            waiting.set()

    def text(piece: str, **_: Any) -> bool:
        return False

    spec = JobSpec(prompt="Tell me", model="lab/m", max_tokens=3)
    stop = StopSignal(threading.Event())
    runner = threading.Thread(
        target=lambda: result.append(engine.generate(spec, stop, progress, text))
    )
    runner.start()
    try:
        assert waiting.wait(10)
        slots = EndpointSlots(queue.redis, lease_s=0.3)
        started = time.monotonic()
        # Its wait (1.5 s) is five leases long: nobody else gets the slot meanwhile.
        while runner.is_alive() and time.monotonic() - started < 1.0:
            assert slots.try_acquire("lab", "intruder", 1) == (False, 1)
        runner.join(30)
    finally:
        stop.event.set()
        engine.close()
    assert "takes 40 requests a minute" in notes[0]
    [answer] = result
    assert answer.text == "Once upon a time"
    assert (answer.prompt_tokens, answer.completion_tokens) == (4, 3)
    assert answer.finish_reason == "length"
    wait_until(lambda: slots.held("lab") == 0, timeout=5, what="the slot to be given back")
