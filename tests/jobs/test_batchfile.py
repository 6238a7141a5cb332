"""Tests for worker.jobs.batchfile: OpenAI batch files checked line by line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.jobs import batchfile
from worker.jobs.batchfile import BatchPlan, first_line_is_batch, read_batch
from worker.modelfile.catalog import UnknownModel

CHAT = "/v1/chat/completions"
MODELS = {"small": Path("/models/small.gguf"), "big": Path("/models/big.gguf")}
looked_up: list[str] = []


def resolve(name: str) -> Path:
    looked_up.append(name)
    if name not in MODELS:
        raise UnknownModel(name, MODELS)
    return MODELS[name]


def line(custom_id: str = "a", url: str = CHAT, **body: Any) -> dict[str, Any]:
    request = {"model": "small", "messages": [{"role": "user", "content": "hi"}], **body}
    if url != CHAT:
        request.pop("messages")
        request.setdefault("prompt", "hi")
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": request}


def check(*lines: dict[str, Any] | str | bytes, endpoint: str | None = CHAT) -> BatchPlan:
    raw = [x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x)).encode()
           for x in lines]  # fmt: skip
    return read_batch(b"\n".join(raw), endpoint=endpoint, defaults={"max_tokens": 7},
                      resolve_model=resolve)  # fmt: skip


def errors(plan: BatchPlan) -> list[tuple[int | None, str | None, str]]:
    return [(e.line, e.param, e.code) for e in plan.errors]


def test_good_file_gives_one_request_per_line_with_defaults_under_it() -> None:
    plan = check(line("a"), "", line("b", max_tokens=3, model="big"), "  ")
    assert plan.ok
    assert [(r.line, r.custom_id) for r in plan.requests] == [(1, "a"), (3, "b")]
    first, second = plan.requests
    assert first.spec.max_tokens == 7 and second.spec.max_tokens == 3
    assert (first.spec.model, second.spec.model) == ("/models/small.gguf", "/models/big.gguf")
    assert first.origin.via == "batch" and first.origin.shape == "chat.completion"


def test_every_bad_line_is_named_with_its_field() -> None:
    plan = check(
        line("a"),
        '{"custom_id": "b", "method": "POST"',
        "[1, 2]",
        {**line("c"), "extra": 1},
        {k: v for k, v in line("d").items() if k != "body"},
        line(""),
        line("a"),
        {**line("e"), "method": "PUT"},
        line("f", url="/v1/embeddings"),
        line("g", model="missing"),
        line("h", temperature="hot"),
        {**line("i"), "body": "text"},
        line("j", url="/v1/completions"),
        b'{"custom_id": "\xff"}',
        '{"custom_id": "k", "custom_id": "k"}',
    )
    assert errors(plan) == [
        (2, None, "invalid_json"),
        (3, None, "invalid_json"),
        (4, "extra", "unknown_parameter"),
        (5, "body", "missing_required_parameter"),
        (6, "custom_id", "invalid_value"),
        (7, "custom_id", "duplicate_custom_id"),
        (8, "method", "invalid_value"),
        (9, "url", "invalid_url"),
        (10, "body.model", "model_not_found"),
        (11, "body.temperature", "invalid_value"),
        (12, "body", "invalid_value"),
        (13, "url", "mismatched_endpoint"),
        (14, None, "invalid_encoding"),
        (15, None, "invalid_json"),
    ]
    assert "the custom_id of line 1" in plan.errors[5].message
    assert str(plan.errors[6]) == 'line 8 field \'method\': "PUT" is not supported (only "POST")'
    assert "'missing' does not exist" in plan.errors[8].message


def test_without_an_endpoint_the_first_line_sets_it() -> None:
    plan = check(line("a", url="/v1/completions"), line("b"), endpoint=None)
    assert errors(plan) == [(2, "url", "mismatched_endpoint")]


def test_empty_file_and_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    assert errors(check("", " ")) == [(None, None, "empty_file")]
    monkeypatch.setattr(batchfile, "MAX_REQUESTS", 2)
    assert errors(check(line("a"), line("b"), line("c"))) == [(3, None, "too_many_requests")]
    monkeypatch.setattr(batchfile, "MAX_ERRORS", 2)
    plan = check("x", "y", "z", "w")
    assert errors(plan) == [(1, None, "invalid_json"), (2, None, "invalid_json"),
                            (None, None, "too_many_errors")]  # fmt: skip


def test_each_model_is_looked_up_once() -> None:
    looked_up.clear()
    assert check(*(line(str(n)) for n in range(50))).ok
    assert looked_up == ["small"]


def test_a_byte_order_mark_is_skipped_and_the_format_is_recognised() -> None:
    data = b"\xef\xbb\xbf\n" + json.dumps(line("a")).encode()
    assert first_line_is_batch(data)
    assert read_batch(data, endpoint=CHAT, defaults={}, resolve_model=resolve).ok
    assert not first_line_is_batch(b'{"prompt": "a job spec", "url": "x"}\n')
    assert not first_line_is_batch(b"not json")
