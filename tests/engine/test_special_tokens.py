"""Control tokens and tags such as Gemma's <|image> and <|tool_call> are never a job's text."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from tests.engine.conftest import MARKERS, WORDS, one_token
from worker.engine.api import LoadOptions, StopSignal
from worker.engine.batch_engine import BatchEngine
from worker.engine.context import BatchContext
from worker.engine.markers import is_marker
from worker.jobs.spec import JobSpec

OPTIONS = LoadOptions(n_ctx=256, n_batch=64)


@pytest.fixture(scope="module")
def gemma4_context(gemma4_model: Path) -> Iterator[BatchContext]:
    ctx = BatchContext(gemma4_model, OPTIONS, 1)
    yield ctx
    ctx.close()


def _token(ctx: BatchContext, text: str) -> int:
    return one_token(int(ctx.model.model), text)


@pytest.mark.parametrize("text", [*MARKERS, "<|turn>", '<|"|>', "<channel|>", "<unused6226>"])
def test_markers_render_as_nothing(gemma4_context: BatchContext, text: str) -> None:
    token = _token(gemma4_context, text)
    assert gemma4_context.piece(token) == b""


@pytest.mark.parametrize("text", ["<eos>", "<turn|>"])
def test_end_tokens_end_the_job(gemma4_context: BatchContext, text: str) -> None:
    assert gemma4_context.piece(_token(gemma4_context, text)) is None


@pytest.mark.parametrize("text", [*WORDS, "\n\n", "<", " <", "</", "|>"])
def test_text_tokens_render_as_themselves(gemma4_context: BatchContext, text: str) -> None:
    assert gemma4_context.piece(_token(gemma4_context, text)) == text.encode()


def test_a_job_that_samples_markers_shows_only_its_words(gemma4_model: Path) -> None:
    engine = BatchEngine(OPTIONS, 1)
    try:
        spec = JobSpec(prompt="Tell me", model=str(gemma4_model), max_tokens=40, seed=3,
                       temperature=0.0, repeat_penalty=1.0)  # fmt: skip
        result = engine.submit(spec, StopSignal(threading.Event())).wait()
    finally:
        engine.close()
    assert result.completion_tokens == 40 and result.finish_reason == "length"
    words = result.text.split()
    assert words and set(words) <= {w.strip() for w in WORDS}, result.text
    assert len(words) < 40, "the model was meant to sample markers too"
    assert "<" not in result.text and "|" not in result.text


@pytest.mark.parametrize(
    ("piece", "marker"),
    [
        (b"<start_of_image>", True),  # Gemma 3: typed user-defined in some GGUFs
        (b"<end_of_image>", True),
        (b"<image_soft_token>", True),
        (b"<unused42>", True),
        (b"<|reserved_special_token_3|>", True),
        ("<\uff5cend\u2581of\u2581sentence\uff5c>".encode(), True),  # DeepSeek's
        (b"<table>", False),  # HTML tags, reasoning tags and whitespace runs are text
        (b"</td>", False),
        (b"<think>", False),
        (b"<tool_call>", False),
        (b"\n\n", False),
        (b"<|", False),
        (b"||>", False),
    ],
)
def test_which_user_defined_tokens_are_markers(piece: bytes, marker: bool) -> None:
    assert is_marker(llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED, piece) is marker
    assert is_marker(llama_cpp.LLAMA_TOKEN_ATTR_NORMAL, piece) is marker
    assert is_marker(llama_cpp.LLAMA_TOKEN_ATTR_CONTROL, piece)
