"""The OpenAI-compatible endpoints, with the official `openai` client as the client."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.api.conftest import LiveApi
from worker.jobs.job import JobState
from worker.queue import keys
from worker.testing.harness import wait_for_event, wait_until

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Once upon a time"}]


@pytest.fixture
def client(live_api: LiveApi) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_api.url + "/v1", api_key=live_api.token, max_retries=0)


def _job_of(live_api: LiveApi, completion_id: str) -> str:
    return completion_id.split("-", 1)[1]


def test_models_lists_the_default_model_and_the_model_folder(client: openai.OpenAI) -> None:
    names = {model.id for model in client.models.list()}
    assert {"stories260K", "tiny", "slow"} <= names
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nothing-by-that-name")


def test_chat_completion_is_a_job_and_answers_with_its_text(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    answer = client.chat.completions.create(
        model="stories260K",
        messages=PROMPT,
        max_tokens=16,
        seed=7,
        user="someone",
    )
    job = live_api.queue.client.get(_job_of(live_api, answer.id))
    assert answer.object == "chat.completion"
    assert answer.model == "stories260K"
    assert answer.choices[0].message.content == job.output
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens == job.completion_tokens
    assert answer.usage.total_tokens == job.prompt_tokens + job.completion_tokens
    assert job.state is JobState.succeeded
    assert job.origin is not None and job.origin.shape == "chat.completion"
    assert job.spec.max_tokens == 16 and job.spec.seed == 7


def test_streamed_chat_completion_carries_the_job_text_and_usage(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    stream = client.chat.completions.create(
        model="stories260K",
        messages=PROMPT,
        max_completion_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    job = live_api.queue.client.get(_job_of(live_api, chunks[0].id))
    assert text == job.output and text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishing[-1] in ("stop", "length") and set(finishing[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == job.completion_tokens


def test_completion_streamed_and_not(client: openai.OpenAI, live_api: LiveApi) -> None:
    whole = client.completions.create(model="stories260K", prompt="Tim saw", max_tokens=12)
    job = live_api.queue.client.get(_job_of(live_api, whole.id))
    assert whole.object == "text_completion" and whole.choices[0].text == job.output
    assert job.spec.raw and job.spec.prompt == "Tim saw"
    parts = list(client.completions.create(model="stories260K", prompt="Tim saw", max_tokens=12,
                                           stream=True))  # fmt: skip
    streamed = live_api.queue.client.get(_job_of(live_api, parts[0].id))
    assert "".join(p.choices[0].text for p in parts) == streamed.output


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"temperature": 9}, "temperature"),
    ],
)
def test_a_field_that_would_change_the_result_is_refused_by_name(
    client: openai.OpenAI, live_api: LiveApi, extra: dict[str, object], param: str
) -> None:
    before = live_api.queue.client.ledger.job_ids()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="stories260K", messages=PROMPT, **extra)  # type: ignore[call-overload]
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert param in error["message"]
    assert live_api.queue.client.ledger.job_ids() == before  # nothing queued


def test_unknown_parameter_and_unknown_model_are_refused(live_api: LiveApi) -> None:
    with live_api.http() as http:
        body = {"model": "stories260K", "messages": PROMPT, "temprature": 0.2}
        reply = http.post("/v1/chat/completions", json=body)
        assert reply.status_code == 400
        assert reply.json()["error"]["param"] == "temprature"
        reply = http.post(
            "/v1/chat/completions", json={**body, "model": "nope"} | {"temprature": None}
        )
        assert reply.status_code == 400  # still an unknown parameter, even when null
        reply = http.post("/v1/completions", json={"model": "nope", "prompt": "x"})
        assert reply.status_code == 404
        error = reply.json()["error"]
        assert error["code"] == "model_not_found" and "stories260K" in error["message"]


def test_a_client_that_goes_away_cancels_its_streamed_job(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    after = live_api.queue.client.last_event_id()
    stream = client.chat.completions.create(
        model="slow",
        messages=PROMPT,
        max_tokens=3000,
        stream=True,
    )
    chunks = iter(stream)
    first = next(chunks)
    job_id = _job_of(live_api, first.id)
    live_api.queue.wait_tokens(job_id)
    stream.close()
    event = live_api.queue.wait_state(job_id, "cancelled", "succeeded")
    assert event.data["state"] == "cancelled"
    assert live_api.queue.client.get(job_id).completion_tokens < 3000
    del after


def test_a_client_that_goes_away_cancels_its_waiting_job(live_api: LiveApi) -> None:
    after = live_api.queue.client.last_event_id()
    body = {"model": "slow", "messages": PROMPT, "max_tokens": 3000}
    with (
        live_api.http(timeout=httpx.Timeout(60, read=1.5)) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.post("/v1/chat/completions", json=body)
    queued = wait_for_event(
        live_api.queue.redis,
        lambda e: e.type == "state" and e.data.get("state") == "queued",
        after=after,
    )
    live_api.queue.wait_state(queued.job_id, "cancelled")
    wait_until(lambda: not live_api.queue.redis.sismember(keys.RUNNING, queued.job_id))
