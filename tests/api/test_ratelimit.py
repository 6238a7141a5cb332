"""http_rate_limit_rpm: a token past its burst gets a 429 that says when to come back."""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from worker.api.ratelimit import RateLimiter, token_hash
from worker.api.token import TokenFile
from worker.queue import keys
from worker.queue.connection import QueueAddress
from worker.testing.harness import ApiProcess, Queue, start_queue

RPM = 120  # one request per 0.5 s, after a burst of one second's worth:
BURST = 2  # short waits for the tests, and a burst above one to see
INTERVAL_MS = 60_000 / RPM
SOON = 150  # ms


@pytest.fixture(scope="module")
def rl_queue() -> Iterator[Queue]:
    """A queue with no worker: the limit is checked before any job would be made."""
    home = Path(tempfile.mkdtemp(prefix="psr-", dir="/tmp"))
    queue = start_queue(home)
    try:
        yield queue
    finally:
        queue.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def limited(rl_queue: Queue) -> Iterator[ApiProcess]:
    api = ApiProcess.start(rl_queue, PROMPTSPOOL_HTTP_RATE_LIMIT_RPM=str(RPM))
    yield api
    api.stop()


@pytest.fixture(autouse=True)
def full_budget(rl_queue: Queue) -> None:
    """Each test starts with an idle token: no budget left over from the test before."""
    for key in rl_queue.redis.scan_iter(keys.rate_limit("*")):
        rl_queue.redis.delete(key)


def http(api: ApiProcess) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers=api.headers, timeout=30)


def exhaust(client: httpx.Client, path: str) -> httpx.Response:
    """The burst passes, the request after it is refused: that refusal."""
    answers = [client.get(path) for _ in range(BURST + 1)]
    assert [a.status_code for a in answers] == [200] * BURST + [429], answers[-1].text
    return answers[-1]


def retry_after_ms(refused: httpx.Response) -> int:
    """The precise wait the refusal names, checked against its whole-second twin."""
    wait_ms = int(refused.headers["retry-after-ms"])
    assert 0 < wait_ms <= INTERVAL_MS
    assert refused.headers["retry-after"] == str(max(1, math.ceil(wait_ms / 1000)))
    return wait_ms


def wait_out(wait_ms: int) -> None:
    """Let the time the server named pass (a deadline from its header, not a guess)."""
    threading.Event().wait(wait_ms / 1000)


def test_without_a_limit_nothing_is_limited_and_nothing_is_stored(rl_queue: Queue) -> None:
    api = ApiProcess.start(rl_queue)
    try:
        with http(api) as client:
            codes = {client.get(path).status_code for path in ["/tasks", "/v1/models"] * 15}
    finally:
        api.stop()
    assert codes == {200}
    assert not list(rl_queue.redis.scan_iter(keys.rate_limit("*")))


def test_past_the_burst_v1_answers_openais_rate_limit_error(limited: ApiProcess) -> None:
    with http(limited) as client:
        refused = exhaust(client, "/v1/models")
    wait_ms = retry_after_ms(refused)
    error = refused.json()["error"]
    assert {k: v for k, v in error.items() if k != "message"} == {
        "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}  # fmt: skip
    assert f"{RPM} requests a minute" in error["message"]
    assert "http_rate_limit_rpm" in error["message"]
    assert f"try again in {wait_ms / 1000:.3f} s" in error["message"]


def test_past_the_burst_tasks_answers_a_detail(limited: ApiProcess) -> None:
    with http(limited) as client:
        refused = exhaust(client, "/tasks")
    retry_after_ms(refused)
    body = refused.json()
    assert list(body) == ["detail"]
    assert "http_rate_limit_rpm" in body["detail"] and "try again in" in body["detail"]


def test_waiting_what_retry_after_ms_says_lets_the_next_request_through(
    limited: ApiProcess,
) -> None:
    with http(limited) as client:
        first = retry_after_ms(exhaust(client, "/tasks"))
        again = retry_after_ms(client.get("/tasks"))
        assert again <= first  # a refusal costs nothing: the wait only shrinks
        wait_out(again)
        assert client.get("/tasks").status_code == 200
        # Then the steady rate: one request per interval, the next one refused again.
        assert client.get("/tasks").status_code == 429


def test_health_and_refused_tokens_are_not_counted(limited: ApiProcess) -> None:
    with httpx.Client(base_url=limited.url, timeout=30) as anonymous:
        for _ in range(5):
            assert anonymous.get("/health").status_code == 200
            wrong = anonymous.get("/tasks", headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401
    with http(limited) as client:
        exhaust(client, "/tasks")  # the whole burst is still there


def test_the_budget_is_kept_under_a_digest_of_the_token_and_expires(
    rl_queue: Queue, limited: ApiProcess
) -> None:
    with http(limited) as client:
        assert client.get("/tasks").status_code == 200
    stored = [k.decode() for k in rl_queue.redis.scan_iter(keys.rate_limit("*"))]
    assert stored == [keys.rate_limit(token_hash(limited.token))]
    assert limited.token not in stored[0]
    assert 0 < rl_queue.redis.pttl(stored[0]) <= INTERVAL_MS


def test_a_rotated_token_starts_with_a_fresh_budget(rl_queue: Queue, limited: ApiProcess) -> None:
    with http(limited) as client:
        exhaust(client, "/tasks")
    limited.token = TokenFile(rl_queue.settings.paths.config).rotate()
    with http(limited) as client:
        exhaust(client, "/tasks")


def test_the_openai_client_gets_a_rate_limit_error_or_retries_as_told(
    limited: ApiProcess,
) -> None:
    base = limited.url + "/v1"
    impatient = openai.OpenAI(base_url=base, api_key=limited.token, max_retries=0)
    patient = openai.OpenAI(base_url=base, api_key=limited.token, max_retries=2)
    for _ in range(BURST):
        impatient.models.list()
    with pytest.raises(openai.RateLimitError) as refused:
        impatient.models.list()
    assert refused.value.code == "rate_limit_exceeded"
    # Come back SOON ms before the token may: shorter than any backoff of the client's own
    # (0.375 s at least), so a quick success proves that it waited what retry-after-ms said.
    wait_out(int(refused.value.response.headers["retry-after-ms"]) - SOON)
    started = time.monotonic()
    answer = patient.models.with_raw_response.list()
    assert answer.retries_taken == 1
    assert time.monotonic() - started < 0.375


def test_a_queue_that_does_not_answer_lets_requests_through(tmp_path: Path) -> None:
    """The limiter never fails a request: the request meets the outage itself (503)."""
    address = QueueAddress.from_url(f"unix://{tmp_path / 'no-server.sock'}")
    limiter = RateLimiter.for_queue(address, 1)
    try:
        assert limiter.wait_ms("a-token") == 0
        limiter.check("a-token")
    finally:
        limiter.close()
