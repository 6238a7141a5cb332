"""The batch engine: several jobs in one llama.cpp context, each as if it had run alone."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

import worker.engine.sampling
from worker.engine.api import Cancelled, EngineError, GenerationResult, LoadOptions, StopSignal
from worker.engine.batch_engine import BatchEngine
from worker.engine.context import BatchContext
from worker.engine.hardware import thread_counts
from worker.engine.tickets import StepInfo, Ticket
from worker.jobs.spec import JobSpec, Priority

OPTIONS = LoadOptions(n_ctx=512, n_batch=64)
PROMPTS = [
    "Once upon a time",
    "The little dog ran to the park and",
    "Lily and Tom wanted to play with the big red ball. One day",
    "A bird sat in a tree",
]


@pytest.fixture
def engines() -> Iterator[Callable[..., BatchEngine]]:
    """Makes engines and closes them all at the end of the test."""
    made: list[BatchEngine] = []

    def make(slots: int = 1, options: LoadOptions = OPTIONS) -> BatchEngine:
        engine = BatchEngine(options, slots)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


def stop() -> StopSignal:
    return StopSignal(threading.Event())


_STREAMED: dict[int, list[str]] = {}  # ticket id -> the text its on_text received


def submit(engine: BatchEngine, spec: JobSpec, signal: StopSignal | None = None) -> Ticket:
    """engine.submit, recording the text the loop thread hands on (see `play`)."""
    chunks: list[str] = []

    def on_text(text: str, **_: Any) -> bool:
        chunks.append(text)
        return False

    ticket = engine.submit(spec, signal or stop(), on_text)
    _STREAMED[ticket.id] = chunks
    return ticket


def play(ticket: Ticket) -> GenerationResult:
    """Wait for the ticket, checking that the streamed text adds up to the result."""
    result: GenerationResult = ticket.wait(lambda *a, **k: None)
    assert "".join(_STREAMED.pop(ticket.id, [])) == result.text
    return result


def alone(spec: JobSpec, options: LoadOptions = OPTIONS, slots: int = 1) -> GenerationResult:
    """The job run by itself, in an engine with `slots` slots (all others empty)."""
    engine = BatchEngine(options, slots)
    try:
        return play(submit(engine, spec, stop()))
    finally:
        engine.close()


def specs(model: Path, count: int, **fields: Any) -> list[JobSpec]:
    return [
        JobSpec.model_validate(
            {"prompt": PROMPTS[i % len(PROMPTS)], "model": str(model), "seed": i + 1, **fields}
        )
        for i in range(count)
    ]


def raw_generate(model: Path, spec: JobSpec) -> str:
    """llama-cpp-python's own Llama.generate, the reference for one stream."""
    # The engine's thread counts, and flash attention on as its default (auto) resolves
    # here: with flash attention, how the work is split among threads shows in the sums.
    threads, threads_batch = thread_counts(OPTIONS)
    llm = llama_cpp.Llama(
        str(model), n_ctx=512, n_batch=64, flash_attn=True, n_threads=threads,
        n_threads_batch=threads_batch, verbose=False,
    )  # fmt: skip
    try:
        assert spec.seed is not None and spec.prompt is not None
        llm.set_seed(spec.seed)
        tokens: list[int] = []
        for token in llm.generate(
            llm.tokenize(spec.prompt.encode()), top_k=spec.top_k, top_p=spec.top_p,
            min_p=spec.min_p, temp=spec.temperature, repeat_penalty=spec.repeat_penalty,
        ):  # fmt: skip
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                break
            tokens.append(token)
            if len(tokens) == spec.max_tokens:
                break
        return llm.detokenize(tokens).decode(errors="replace")
    finally:
        llm.close()


@pytest.mark.parametrize(
    "sampling",
    [
        {},  # the defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalty 1.1
        {"temperature": 0.0, "repeat_penalty": 1.3},
        {"temperature": 1.5, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 0.5},
        {"temperature": 0.7, "top_k": 100, "top_p": 0.9, "min_p": 0.1, "repeat_penalty": 2.0},
        {"temperature": 0.9, "repeat_penalty": 0.0},
    ],
)
@pytest.mark.parametrize("penalty", ["llama.cpp", "python", "python, shortlist"])
def test_one_stream_samples_as_llama_generate(
    stories_model: Path, sampling: dict[str, Any], penalty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if penalty != "llama.cpp":  # as for vocabularies larger than stories260K's 512 tokens
        monkeypatch.setattr(worker.engine.sampling, "NATIVE_PENALTY_MAX_VOCAB", 0)
    if "shortlist" in penalty:  # as for 64k tokens and more: the chain gets a shortlist
        monkeypatch.setattr(worker.engine.sampling, "SHORTLIST_MIN_VOCAB", 0)
        monkeypatch.setattr(worker.engine.sampling, "SAMPLE_POINTS", 16)
    spec = specs(stories_model, 1, max_tokens=300, seed=7, **sampling)[0]
    assert alone(spec).text == raw_generate(stories_model, spec)


@pytest.mark.parametrize(
    "sampling",
    [{}, {"temperature": 0.0}, {"top_k": 1}, {"top_k": 128, "top_p": 0.99, "min_p": 0.0}],
)
def test_a_large_vocabulary_samples_from_a_shortlist_as_from_every_candidate(
    llama3_model: Path, sampling: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """128k tokens: the chain is given each step's shortlist, never the whole vocabulary,
    and picks what it picks from every candidate. (On this random model the top logits
    are often near-ties that another thread count breaks the other way, so the reference
    is the engine itself, not llama-cpp-python; stories260K checks that one above.)"""
    spec = specs(llama3_model, 1, max_tokens=200, seed=3, **sampling)[0]
    lists: list[int] = []
    real_shortlist = worker.engine.sampling.shortlist

    def counted(logits: Any, k: int, guess: float | None) -> Any:
        found = real_shortlist(logits, k, guess)
        assert found is not None and k <= len(found[0]) < len(logits) // 10
        lists.append(len(found[0]))
        return found

    monkeypatch.setattr(worker.engine.sampling, "shortlist", counted)
    shortlisted = alone(spec)
    assert len(lists) == shortlisted.completion_tokens == 200
    monkeypatch.setattr(worker.engine.sampling, "SHORTLIST_MIN_VOCAB", 10**9)  # every one
    assert alone(spec).text == shortlisted.text
    assert len(lists) == 200


@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_jobs_in_a_batch_write_what_they_write_alone(
    engines: Callable[..., BatchEngine], stories_model: Path, count: int, temperature: float
) -> None:
    jobs = specs(stories_model, count, max_tokens=200, temperature=temperature)
    engine = engines(slots=count)
    tickets = [submit(engine, spec, stop()) for spec in jobs]
    together = [play(ticket) for ticket in tickets]
    assert [r.text for r in together] == [alone(spec, slots=count).text for spec in jobs]
    assert all(r.completion_tokens > 0 for r in together)


def test_greedy_batch_matches_alone_on_random_weights(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    jobs = specs(tiny_model, 4, max_tokens=300, temperature=0.0)
    engine = engines(slots=4)
    steps: list[StepInfo] = []
    engine.on_step = steps.append
    tickets = [submit(engine, spec, stop()) for spec in jobs]
    together = [play(ticket).text for ticket in tickets]
    assert together == [alone(spec, slots=4).text for spec in jobs]
    assert max(len(step.generated) for step in steps) == 4  # they really ran together


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_many_prompt_lengths_in_one_batch_change_no_job(
    engines: Callable[..., BatchEngine], stories_model: Path, temperature: float
) -> None:
    """Prompts of 3 to 32 words, read in chunks while others generate."""
    options = LoadOptions(n_ctx=512, n_batch=48)
    words = " ".join(PROMPTS).split()
    jobs = [
        JobSpec(prompt=" ".join(words[: 3 + (i * 7) % len(words)]), model=str(stories_model),
                max_tokens=150, seed=i + 1, temperature=temperature)
        for i in range(16)
    ]  # fmt: skip
    engine = engines(slots=16, options=options)
    together = [play(ticket).text for ticket in [submit(engine, job, stop()) for job in jobs]]
    solo = engines(slots=16, options=options)
    assert together == [play(submit(solo, job, stop())).text for job in jobs]


def test_sampling_threads_give_the_same_tokens(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.engine.sampling.SamplerPool, "MIN_VOCAB", 0)
    monkeypatch.setattr(worker.engine.sampling, "NATIVE_PENALTY_MAX_VOCAB", 0)
    pooled: list[int] = []
    sample = worker.engine.sampling.SamplerPool.sample

    def counted(self: worker.engine.sampling.SamplerPool, ctx: int, jobs: Any) -> list[int]:
        pooled.append(len(jobs))
        return sample(self, ctx, jobs)

    monkeypatch.setattr(worker.engine.sampling.SamplerPool, "sample", counted)
    jobs = specs(tiny_model, 8, max_tokens=100, temperature=0.8)
    jobs[::2] = [job.model_copy(update={"temperature": 0.0}) for job in jobs[::2]]
    engine = BatchEngine(OPTIONS, 8, sampling_threads=3)
    try:
        together = [play(ticket).text for ticket in [submit(engine, j, stop()) for j in jobs]]
    finally:
        engine.close()
    assert together == [alone(job, slots=8).text for job in jobs]
    assert pooled and max(pooled) == 8


def test_long_prompt_is_read_in_chunks_while_others_generate(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    engine = engines(slots=2, options=LoadOptions(n_ctx=1024, n_batch=32))
    first = JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=120, temperature=0)
    long_prompt = JobSpec(prompt="the dog ran home " * 60, model=str(tiny_model), max_tokens=4)
    steps: list[StepInfo] = []
    joined: list[Ticket] = []

    def on_step(step: StepInfo) -> None:  # runs on the loop thread, between two decodes
        steps.append(step)
        if step.generated and not joined:
            joined.append(submit(engine, long_prompt, stop()))

    engine.on_step = on_step
    ticket = submit(engine, first, stop())
    first_text = play(ticket).text
    second = play(joined[0])
    reading = [step for step in steps if joined[0].id in step.prompt]
    assert len(reading) >= 5  # the prompt was read over several steps ...
    assert sum(step.prompt[joined[0].id] for step in reading) == second.prompt_tokens
    for step in reading:  # ... and the first job got its token in every one of them
        assert ticket.id in step.generated
        assert step.prompt[joined[0].id] <= 32
    assert first_text == alone(first, LoadOptions(n_ctx=1024, n_batch=32), slots=2).text


def test_cancelling_one_job_leaves_the_others_alone(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    jobs = specs(tiny_model, 3, max_tokens=80, temperature=0.0)
    later = specs(tiny_model, 4, max_tokens=80, temperature=0.0)[3]
    engine = engines(slots=3)
    stops = [stop() for _ in jobs]
    tickets = [submit(engine, spec, signal) for spec, signal in zip(jobs, stops, strict=True)]
    generated = 0
    refill: list[Ticket] = []

    def on_step(step: StepInfo) -> None:
        nonlocal generated
        generated += tickets[1].id in step.generated
        if generated == 5:
            stops[1].event.set()  # cancel the middle job after its 5th token
        if tickets[1].finished_step is not None and not refill:
            refill.append(submit(engine, later, stop()))  # takes the freed slot

    engine.on_step = on_step
    results = [play(tickets[0]), None, play(tickets[2])]
    with pytest.raises(Cancelled, match="cancelled"):
        play(tickets[1])
    reused = play(refill[0])
    assert results[0] is not None and results[2] is not None
    assert results[0].text == alone(jobs[0], slots=3).text
    assert results[2].text == alone(jobs[2], slots=3).text
    assert reused.text == alone(later, slots=3).text  # the slot's old KV cells are gone


def test_cancel_while_reading_the_prompt(
    engines: Callable[..., BatchEngine], slow_model: Path
) -> None:
    engine = engines(slots=2, options=LoadOptions(n_ctx=1024, n_batch=32))
    signal = stop()
    read: list[int] = []

    def on_step(step: StepInfo) -> None:
        read.extend(step.prompt.values())
        signal.event.set()  # cancel after the first chunk

    engine.on_step = on_step
    spec = JobSpec(prompt="the cat sat " * 60, model=str(slow_model), max_tokens=5)
    ticket = submit(engine, spec, signal)
    progress: list[tuple[str, int, int]] = []
    with pytest.raises(Cancelled, match="cancelled"):
        ticket.wait(lambda phase, done, total, **_: progress.append((phase, done, total)))
    assert read == [32]
    assert progress[-1] == ("prompt", 32, progress[-1][2]) and progress[-1][2] > 32


def test_stop_strings_max_tokens_and_context_end_per_job(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    options = LoadOptions(n_ctx=256, n_batch=64)
    base = JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=60, seed=3)
    full = alone(base, options, slots=3).text
    stop_word = full[20:26]
    jobs = [
        base.model_copy(update={"stop": [stop_word]}),
        base.model_copy(update={"max_tokens": 7}),
        base.model_copy(update={"max_tokens": 5000}),
    ]
    engine = engines(slots=3, options=options)
    stopped, short, to_the_end = (play(submit(engine, spec, stop())) for spec in jobs)
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[: full.index(stop_word)]
    assert (short.finish_reason, short.completion_tokens) == ("length", 7)
    assert to_the_end.finish_reason == "context"
    assert to_the_end.prompt_tokens + to_the_end.completion_tokens == 256


def test_prompt_longer_than_a_slot_fails_alone(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    engine = engines(slots=2, options=LoadOptions(n_ctx=256, n_batch=64))
    good = submit(engine, JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=20), stop())
    bad = submit(engine, JobSpec(prompt="the cat " * 200, model=str(tiny_model)), stop())
    with pytest.raises(EngineError, match=r"the prompt is \d+ tokens; the context window is 256"):
        play(bad)
    assert play(good).completion_tokens == 20


def test_job_for_another_model_waits_for_the_batch_to_drain(
    engines: Callable[..., BatchEngine], tiny_model: Path, stories_model: Path
) -> None:
    engine = engines(slots=2)
    running = submit(
        engine, JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=40), stop()
    )
    later: list[Ticket] = []
    steps: list[StepInfo] = []

    def on_step(step: StepInfo) -> None:
        steps.append(step)
        if step.generated and not later:
            other = JobSpec(prompt="Once upon a time", model=str(stories_model), max_tokens=10)
            same = JobSpec(prompt="the dog", model=str(tiny_model), max_tokens=10)
            later.extend([submit(engine, other, stop()), submit(engine, same, stop())])

    engine.on_step = on_step
    play(running)
    other, same = later
    assert play(other).completion_tokens > 0
    assert play(same).completion_tokens == 10
    assert running.finished_step is not None and other.admitted_step is not None
    assert other.admitted_step >= running.finished_step  # no step mixed the two models
    assert other.finished_step is not None and same.admitted_step is not None
    assert same.admitted_step >= other.finished_step  # it did not jump the queue
    assert engine.model_path == tiny_model.resolve()


def test_priority_decides_who_enters_first(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    engine = engines(slots=1)
    blocker = submit(
        engine, JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=20), stop()
    )
    waiting: list[Ticket] = []

    def on_step(step: StepInfo) -> None:
        if step.generated and not waiting:
            for priority in (Priority.low, Priority.normal, Priority.high):
                spec = JobSpec(prompt="a", model=str(tiny_model), max_tokens=2, priority=priority)
                waiting.append(submit(engine, spec, stop()))

    engine.on_step = on_step
    play(blocker)
    for ticket in waiting:
        play(ticket)
    low, normal, high = (t.admitted_step or 0 for t in waiting)
    assert high < normal < low


def test_ensure_model_loads_only_when_needed(
    engines: Callable[..., BatchEngine], tiny_model: Path, models_dir: Path
) -> None:
    engine = engines(slots=2)
    assert engine.ensure_model(tiny_model) is True
    assert engine.ensure_model(tiny_model) is False
    assert engine.ensure_model(tiny_model, LoadOptions(n_ctx=256, n_batch=64)) is True
    with pytest.raises(ValueError, match="no such file"):
        engine.ensure_model(models_dir / "missing.gguf")


def test_close_fails_the_running_job(engines: Callable[..., BatchEngine], tiny_model: Path) -> None:
    engine = engines(slots=2)
    ticket = submit(
        engine, JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=5000), stop()
    )
    closer = threading.Thread(target=engine.close)
    engine.on_step = lambda step: closer.start() if step.step == 3 else None
    with pytest.raises(EngineError, match="closed"):
        ticket.wait()
    closer.join(30)
    assert not closer.is_alive()
    with pytest.raises(EngineError, match="closed"):
        submit(engine, JobSpec(prompt="a", model=str(tiny_model)), stop())


def test_context_applies_chat_template_and_reports_gpu(chat_model: Path) -> None:
    ctx = BatchContext(chat_model, OPTIONS, 2)
    try:
        templated = ctx.prompt_tokens(JobSpec(prompt="hi", model=str(chat_model)))
        raw = ctx.prompt_tokens(JobSpec(prompt="hi", model=str(chat_model), raw=True))
        assert len(templated) > len(raw)
        assert ctx.n_ctx_seq == OPTIONS.n_ctx  # each slot gets the whole per-job context
        if llama_cpp.llama_supports_gpu_offload():
            assert ctx.gpu.active
        else:
            assert not ctx.gpu.active and "CPU" in ctx.gpu.reason
    finally:
        ctx.close()


def test_text_goes_to_on_text_on_the_loop_thread_token_by_token(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    """No thread wakes up per token: the loop thread hands each token's text and counts to
    on_text itself. True from on_text cancels the job; an error there fails only that job,
    with the error, and the batch goes on."""
    engine = engines(slots=2)
    seen: list[tuple[str, int]] = []

    def record(text: str, *, done: int, **_: Any) -> bool:
        seen.append((threading.current_thread().name, done))
        return False

    def cancel_at_5(text: str, *, done: int, **_: Any) -> bool:
        return done >= 5

    def broken(text: str, *, done: int, **_: Any) -> bool:
        raise OSError("the reader went away")

    long = JobSpec(prompt="the cat", model=str(tiny_model), max_tokens=40, seed=1)
    recorded = engine.submit(long, stop(), record)
    cancelled = engine.submit(long, stop(), cancel_at_5)
    result: GenerationResult = recorded.wait()
    with pytest.raises(Cancelled):
        cancelled.wait()
    failing = engine.submit(long, stop(), broken)
    with pytest.raises(OSError, match="went away"):
        failing.wait()
    assert play(submit(engine, long)).text == result.text  # the engine goes on as before
    assert {name for name, _ in seen} == {"batch-engine"}
    assert [done for _, done in seen] == list(range(1, result.completion_tokens + 1))


def test_stats_count_the_steps_tokens_and_prompts(
    engines: Callable[..., BatchEngine], tiny_model: Path
) -> None:
    engine = engines(4)
    jobs = specs(tiny_model, 4, max_tokens=20)
    before = engine.stats.as_dict()
    tickets = [submit(engine, spec, stop()) for spec in jobs]
    results = [play(ticket) for ticket in tickets]
    window = engine.stats.since(before)
    # Each job's first token comes from its prompt; the other 19 from generation steps.
    assert window["tokens"] == sum(r.completion_tokens - 1 for r in results) == 4 * 19
    assert window["prompt_tokens"] == sum(r.prompt_tokens for r in results)
    assert 19 <= window["steps"] <= 4 * 19
    assert window["decode_s"] > 0 and window["host_s"] > 0
    assert window["tokens_per_step"] == round(window["tokens"] / window["steps"], 2)


@pytest.mark.parametrize(
    "sampling",
    [{}, {"temperature": 0.0}, {"temperature": 1.2, "top_k": 0, "top_p": 0.9, "min_p": 0.0}],
)
def test_backend_sampling_writes_what_the_cpu_chain_writes(
    stories_model: Path, sampling: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """llama.cpp's in-graph sampler chains: the same tokens, while jobs join and leave."""
    jobs = [
        spec.model_copy(update={"max_tokens": 40 + 30 * i})
        for i, spec in enumerate(specs(stories_model, 6, **sampling))
    ]  # six jobs of different lengths on three slots: chains attach and detach mid-batch

    def texts(backend_sampling: bool) -> list[str]:
        engine = BatchEngine(OPTIONS, 3, backend_sampling=backend_sampling)
        try:
            tickets = [submit(engine, spec, stop()) for spec in jobs]
            return [play(ticket).text for ticket in tickets]
        finally:
            engine.close()

    in_graph = texts(True)
    assert "samples on the CPU" not in caplog.text  # every chain ran in the graph
    assert in_graph == texts(False)
    assert all(in_graph)


def test_cancel_while_the_model_loads_stops_the_load(
    engines: Callable[..., BatchEngine], slow_model: Path
) -> None:
    """llama.cpp asks, as the weights load, whether to go on: a cancel (or the time limit)
    stops a long load there, instead of after it."""
    engine = engines()
    signal = stop()
    progress: list[float] = []

    def on_load(done: float) -> None:
        progress.append(done)
        signal.event.set()  # the user cancels while the model is loading

    engine.on_load = on_load
    ticket = submit(engine, JobSpec(prompt="the cat", model=str(slow_model)), signal)
    with pytest.raises(Cancelled, match="cancelled"):
        ticket.wait()
    assert progress and progress[-1] < 1.0
    assert engine.model_path is None  # nothing stays loaded
    engine.on_load = None
    assert play(submit(engine, JobSpec(prompt="the cat", model=str(slow_model), max_tokens=3),
                              stop())).completion_tokens == 3  # fmt: skip
