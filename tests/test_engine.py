"""The llama.cpp engine alone: same tokens as raw llama-cpp-python, cancel, limits, templates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from worker.engine import Cancelled, Engine, EngineError, LoadOptions, StopSignal
from worker.spec import JobSpec


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(LoadOptions(n_ctx=1024, n_batch=64))
    yield eng
    eng.close()


def _run(engine: Engine, spec: JobSpec, stop: StopSignal | None = None) -> Any:
    chunks: list[str] = []

    def on_text(text: str, **_: Any) -> bool:
        chunks.append(text)
        return False

    result = engine.generate(
        spec, stop or StopSignal(threading.Event()), lambda *a, **k: None, on_text
    )
    assert "".join(chunks) == result.text
    return result


def test_same_text_as_raw_llama_cpp_for_the_same_seed(engine: Engine, stories_model: Path) -> None:
    spec = JobSpec(prompt="Once upon a time", model=str(stories_model), max_tokens=60, seed=42)
    engine.ensure_model(stories_model)
    ours = _run(engine, spec).text

    raw = llama_cpp.Llama(str(stories_model), n_ctx=1024, n_batch=64, verbose=False)
    try:
        raw.set_seed(42)
        tokens: list[int] = []
        for token in raw.generate(
            raw.tokenize(b"Once upon a time"), top_k=spec.top_k, top_p=spec.top_p,
            min_p=spec.min_p, temp=spec.temperature, repeat_penalty=spec.repeat_penalty,
        ):  # fmt: skip
            if llama_cpp.llama_vocab_is_eog(raw._model.vocab, token) or len(tokens) == 60:
                break
            tokens.append(token)
        expected = raw.detokenize(tokens).decode()
    finally:
        raw.close()
    assert ours == expected


def test_prompt_is_evaluated_once(engine: Engine, tiny_model: Path) -> None:
    engine.ensure_model(tiny_model)
    result = _run(engine, JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=10))
    llm = engine._require()
    assert llm.n_tokens == result.prompt_tokens + result.completion_tokens - 1


def test_model_stays_loaded_between_jobs(engine: Engine, tiny_model: Path) -> None:
    assert engine.ensure_model(tiny_model) is True
    assert engine.ensure_model(tiny_model) is False
    assert engine.ensure_model(tiny_model, LoadOptions(n_ctx=512)) is True


def test_prompt_longer_than_context_is_a_clear_error(tiny_model: Path) -> None:
    engine = Engine(LoadOptions(n_ctx=64))
    engine.ensure_model(tiny_model)
    try:
        n_ctx = engine._require().n_ctx()  # llama.cpp pads small contexts up
        with pytest.raises(
            EngineError, match=rf"the prompt is \d+ tokens; the context window is {n_ctx}"
        ):
            _run(engine, JobSpec(prompt="the cat " * 200, model=str(tiny_model)))
    finally:
        engine.close()


def test_generation_stops_at_context_end(tiny_model: Path) -> None:
    engine = Engine(LoadOptions(n_ctx=64))
    engine.ensure_model(tiny_model)
    try:
        result = _run(engine, JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=1000))
        assert result.finish_reason == "context"
        assert result.prompt_tokens + result.completion_tokens == engine._require().n_ctx()
    finally:
        engine.close()


def test_stop_string_ends_output(engine: Engine, stories_model: Path) -> None:
    engine.ensure_model(stories_model)
    spec = JobSpec(prompt="Once upon a time", model=str(stories_model), max_tokens=200, seed=1,
                   stop=["Lily"])  # fmt: skip
    result = _run(engine, spec)
    assert result.finish_reason == "stop"
    assert "Lily" not in result.text


def test_cancel_during_prompt_processing_uses_abort_callback(
    engine: Engine, slow_model: Path
) -> None:
    engine.ensure_model(slow_model)
    event = threading.Event()
    seen: list[tuple[int, int]] = []

    def on_progress(phase: str, done: int, total: int, **_: Any) -> None:
        if phase == "prompt":
            seen.append((done, total))
            if done > 0:
                event.set()  # cancel after the first batch

    spec = JobSpec(prompt="the cat sat " * 60, model=str(slow_model), max_tokens=5)
    with pytest.raises(Cancelled, match="cancelled"):
        engine.generate(spec, StopSignal(event), on_progress, lambda *a, **k: False)
    assert seen[-1][0] < seen[-1][1]  # stopped before the whole prompt was processed


def test_chat_template_is_applied_unless_raw(engine: Engine, chat_model: Path) -> None:
    engine.ensure_model(chat_model)
    templated = engine.prompt_tokens(JobSpec(prompt="hi", model=str(chat_model)))
    raw = engine.prompt_tokens(JobSpec(prompt="hi", model=str(chat_model), raw=True))
    assert len(templated) > len(raw)


def test_cpu_build_reports_gpu_inactive_with_reason(engine: Engine, tiny_model: Path) -> None:
    engine.ensure_model(tiny_model)
    if llama_cpp.llama_supports_gpu_offload():
        assert engine.gpu.active
    else:
        assert not engine.gpu.active
        assert "CPU" in engine.gpu.reason
