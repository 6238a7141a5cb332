"""The settings' system prompt and prompt format reach /generate jobs, not OpenAI requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveApi, running_api
from worker.jobs.spec import JobSpec


@pytest.fixture(scope="module")
def api(stories_model: Path, models_dir: Path) -> Iterator[LiveApi]:
    with running_api(stories_model, models_dir, PROMPTSPOOL_SYSTEM_PROMPT="From the settings.",
                     PROMPTSPOOL_PROMPT_FORMAT="chatml") as live:  # fmt: skip
        yield live


def spec_of(api: LiveApi, http: httpx.Client, path: str, body: dict[str, Any]) -> JobSpec:
    """Post a request and return the job it made (once ended, so none is left running)."""
    answer = http.post(path, json={"max_tokens": 2, **body})
    assert answer.status_code in (200, 202), answer.text
    job_id = answer.json().get("task_id") or answer.json()["id"].partition("-")[2]
    api.queue.wait_state(job_id, "succeeded")
    return api.queue.client.get(job_id).spec


def test_generate_takes_the_settings_unless_the_body_says(api: LiveApi) -> None:
    with api.http() as http:
        first = spec_of(api, http, "/generate", {"prompt": "Once"})
        own = spec_of(api, http, "/generate", {"prompt": "Once", "system": "", "parent": "j-1",
                                              "prompt_format": "raw"})  # fmt: skip
    assert (first.system, first.prompt_format, first.parent) == ("From the settings.", "chatml",
                                                                 None)  # fmt: skip
    assert (own.system, own.prompt_format, own.parent) == ("", "raw", "j-1")


def test_generate_refuses_an_unknown_prompt_format_by_name(api: LiveApi) -> None:
    with api.http() as http:
        answer = http.post("/generate", json={"prompt": "Once", "prompt_format": "chatlm"})
    assert answer.status_code == 422
    assert "prompt_format" in answer.text and "did you mean 'chatml'?" in answer.text


def test_openai_requests_bring_their_own_prompt(api: LiveApi) -> None:
    with api.http() as http:
        chat = spec_of(
            api,
            http,
            "/v1/chat/completions",
            {"model": "stories260K", "messages": [{"role": "user", "content": "Hi"}]},
        )
        completion = spec_of(api, http, "/v1/completions",
                             {"model": "stories260K", "prompt": "Once"})  # fmt: skip
    assert (chat.system, chat.prompt_format, chat.raw) == (None, None, False)
    assert (completion.system, completion.prompt_format, completion.raw) == (None, None, True)
