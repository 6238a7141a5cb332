"""What endpoints answer: retry waits, messages, backoff, requests and model names."""

from __future__ import annotations

import email.utils

import pytest

from worker.endpoints.config import Endpoint
from worker.jobs.spec import JobSpec, Message
from worker.jobs.target import RemoteTarget, remote_target
from worker.remote.answers import redact, retry_after, status_failure
from worker.remote.backoff import full_jitter
from worker.remote.request import piece_of, request_of

LAB = Endpoint(name="lab", base_url="http://lab:8080/v1")


def test_retry_after_prefers_milliseconds_then_seconds_then_a_date() -> None:
    assert retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after({"Retry-After": "12"}) == 12
    later = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after({"Retry-After": later}, now=1_000_000) == pytest.approx(30)
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
    assert retry_after({"Retry-After": "-5"}) == 0
    assert retry_after({"Retry-After": "1e9"}) == 3600, "bounded"


def test_statuses_say_the_endpoint_the_reason_and_whether_to_try_again() -> None:
    slow_down = b'{"error": {"message": "slow down"}}'
    limited = status_failure(LAB, 429, {"Retry-After": "3"}, slow_down, "/chat/completions")
    assert limited.retry and limited.retry_after == 3
    assert str(limited) == "endpoint 'lab' (http://lab:8080/v1): rate limited (429): slow down"
    for status in (408, 409, 500, 502, 503):
        assert status_failure(LAB, status, {}, b"", "/completions").retry
    key = status_failure(LAB, 401, {}, b'{"detail": "wrong bearer token"}', "/completions")
    assert not key.retry and "the key was refused (401): wrong bearer token" in str(key)
    model = status_failure(LAB, 404, {}, b'{"error": {"message": "model \'x\' does not exist"}}',
                           "/chat/completions")  # fmt: skip
    assert not model.retry and "model 'x' does not exist" in str(model)
    html = status_failure(LAB, 404, {}, b"<html>nope</html>", "/chat/completions")
    assert "OpenAI-compatible" in str(html)
    assert not status_failure(LAB, 400, {}, b"bad", "/completions").retry


def test_keys_are_taken_out_of_messages() -> None:
    assert redact("Incorrect API key provided: sk-secret123", "sk-secret123") == (
        "Incorrect API key provided: [key]"
    )
    assert redact("nothing here", None) == "nothing here"


def test_full_jitter_grows_to_its_cap() -> None:
    for tries in range(2, 12):
        ceiling = min(60.0, 2.0 ** (tries - 2))
        waits = [full_jitter(tries) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2, "spread over the whole range"


def test_requests_are_chats_or_completions_with_the_openai_fields() -> None:
    chat = JobSpec(prompt="Hi", model="lab/m", system="Be brief", max_tokens=9, seed=4,
                   stop=["\n\n"])  # fmt: skip
    path, body = request_of(chat, "m")
    assert path == "/chat/completions"
    assert body["messages"] == [{"role": "system", "content": "Be brief"},
                                {"role": "user", "content": "Hi"}]  # fmt: skip
    assert (body["model"], body["max_tokens"], body["seed"], body["stop"]) == ("m", 9, 4, ["\n\n"])
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    assert "top_k" not in body and "repeat_penalty" not in body
    raw = JobSpec(prompt="Once", model="lab/m", raw=True)
    assert request_of(raw, "m")[0] == "/completions" and request_of(raw, "m")[1]["prompt"] == "Once"
    messages = JobSpec(messages=[Message(role="user", content="Q")], model="lab/m")
    assert request_of(messages, "m")[1]["messages"] == [{"role": "user", "content": "Q"}]
    assert piece_of({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]}) == (
        "a",
        None,
    )
    assert piece_of({"choices": [{"text": "b", "finish_reason": "length"}]}) == ("b", "length")
    assert piece_of({"choices": []}) == ("", None)


def test_remote_model_names() -> None:
    assert remote_target("lab/qwen2.5-7b") == RemoteTarget("lab", "qwen2.5-7b")
    assert remote_target("hf/org/model") == RemoteTarget("hf", "org/model")
    assert remote_target("/models/x.gguf") is None
    assert remote_target("~/x.gguf") is None
    assert remote_target("C:\\models\\x.gguf") is None
    assert remote_target("model.gguf") is None
    assert remote_target("lab/") is None
