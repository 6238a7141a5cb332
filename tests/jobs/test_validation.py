"""Validation errors as people read them: the field, the reason, the field a misspelt one meant."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from worker.jobs.spec import JobSpec
from worker.jobs.validation import describe_validation_error, nearest
from worker.testing.harness import ApiProcess, Queue

MODEL = "/models/x.gguf"


def refusal(fields: dict[str, Any], model: type[BaseModel] = JobSpec) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(fields)
    return describe_validation_error(info.value)


def test_a_misspelt_field_names_the_one_meant() -> None:
    assert refusal({"prompt": "x", "model": MODEL, "temprature": 0.5}) == (
        "field 'temprature': unknown field; did you mean 'temperature'?"
    )


def test_a_field_nothing_is_close_to_is_only_called_unknown() -> None:
    assert refusal({"prompt": "x", "model": MODEL, "colour": "red"}) == (
        "field 'colour': unknown field"
    )


def test_a_misspelt_field_of_a_message_names_the_message_field() -> None:
    chat = [{"role": "user", "content": "hi"}, {"role": "user", "content": "x", "rol": "a"}]
    assert refusal({"messages": chat, "model": MODEL}).startswith(
        "field 'messages[1].rol': unknown field; did you mean 'role'?"
    )


def test_a_misspelt_required_field_is_named_where_it_is_missing() -> None:
    assert refusal({"prompt": "x", "modle": MODEL}) == (
        "field 'model': Field required; did you misspell it as 'modle'? (and 1 more)"
    )
    chat = [{"role": "user", "contents": "x"}]
    assert refusal({"messages": chat, "model": MODEL}) == (
        "field 'messages[0].content': Field required; did you misspell it as 'contents'? "
        "(and 1 more)"
    )


class Knob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brightness: int = 0


def test_any_model_gets_the_hint_and_the_count_of_further_errors() -> None:
    assert refusal({"brightnes": 1, "contrast": 2}, Knob) == (
        "field 'brightnes': unknown field; did you mean 'brightness'? (and 1 more)"
    )


@pytest.mark.parametrize(
    ("given", "meant"),
    [("temp", "temperature"), ("TOP_K", "top_k"), ("seeed", "seed"), ("zzz", None)],
)  # fmt: skip
def test_nearest(given: str, meant: str | None) -> None:
    assert nearest(given, list(JobSpec.model_fields)) == meant


def test_generate_refusal_names_the_field_meant(queue: Queue) -> None:
    api = ApiProcess.start(queue)
    try:
        with httpx.Client(base_url=api.url, headers=api.headers, timeout=60) as http:
            refused = http.post("/generate", json={"prompt": "hi", "temprature": 0.5})
    finally:
        api.stop()
    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert error["field"] == "temprature" and error["type"] == "extra_forbidden"
    assert error["msg"] == "unknown field; did you mean 'temperature'?"
