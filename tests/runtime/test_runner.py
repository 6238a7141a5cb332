"""A job attempt on the real engine: 'loading' lasts until the model works; the time limit
covers the load. The worker's JobRunner and BatchEngine, built as the worker builds them, on
llama.cpp and the test queue's server; what they report is read back from the job's stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.vocabmodel import write_vocab_model
from worker.engine.batch_engine import BatchEngine
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.queue.eta import STEADY_TOKENS
from worker.queue.events import Event
from worker.runtime.cancels import CancelRegistry
from worker.runtime.runner import JobRunner
from worker.settings import Settings
from worker.testing.harness import Queue

CHUNK = 64  # prompt tokens per decode: a longer prompt is read over several steps
LONG_PROMPT = "the cat and the dog " * 12  # 230 tokens: four chunks
GEMMA4_VOCAB = Path(__file__).resolve().parents[3] / "shared/models/vocab/ggml-vocab-gemma-4.gguf"


@pytest.fixture(scope="session")
def big_vocab_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with Gemma 4's 262k-token vocabulary: llama.cpp takes a second or so to
    read the vocabulary before it turns to the weights (a real slow load, of a real size)."""
    if not GEMMA4_VOCAB.is_file():
        pytest.skip(f"{GEMMA4_VOCAB} is not available")
    return write_vocab_model(GEMMA4_VOCAB, tmp_path_factory.mktemp("vocab") / "gemma4.gguf")


@pytest.fixture
def settings(queue: Queue) -> Settings:
    return queue.settings.model_copy(update={"n_ctx": 512, "n_batch": CHUNK})


@pytest.fixture
def engine(settings: Settings) -> Iterator[BatchEngine]:
    """The engine as a one-slot worker builds it (worker/runtime/process.py)."""
    options = JobRunner.load_options_for(settings)
    made = BatchEngine(options, 1)
    yield made
    made.close()


@pytest.fixture
def runner(queue: Queue, settings: Settings, engine: BatchEngine) -> JobRunner:
    """The worker's job runner over `engine`, on the test queue's server."""
    return JobRunner(settings, queue.redis, engine, "test-worker", CancelRegistry())


def run_job(queue: Queue, runner: JobRunner, spec: JobSpec) -> tuple[str, list[Event]]:
    """Queue `spec`, run its first attempt as the worker does; its outcome and its events."""
    [job_id] = queue.client.ledger.create([spec])
    outcome, requeue = runner.run(job_id, 1)
    assert requeue is None
    events = []
    for event in queue.client.events(job_id, block_ms=5000):  # as the API follows a job
        events.append(event)
        if event.state is not None and event.state.finished:
            return outcome, events
    raise AssertionError("unreachable")


def until_first_prompt_step(events: list[Event]) -> list[str]:
    """What the job showed, in order, from its claim to its first prompt progress."""
    shown: list[str] = []
    for event in events:
        if event.type == "state" and (shown or event.data["state"] == "loading"):
            shown.append(f"state {event.data['state']}")
        elif event.type == "progress":
            phase = event.data["phase"]
            label = phase if phase == "loading" else f"{phase} {event.data['done']}"
            shown.append(label)
            if phase == "prompt":
                return shown
    raise AssertionError(f"no prompt progress in {shown}")


def test_a_cold_model_shows_loading_until_its_first_prompt_chunk(
    queue: Queue, runner: JobRunner, engine: BatchEngine, tiny_model: Path
) -> None:
    """A model just loaded pages its weights in while the first chunk is read, which on a
    slow disk takes long: 'running · prompt 0/N' then stood still, so the job stays
    'loading' until that chunk is done. On the model loaded already it runs at once."""
    spec = JobSpec(model=str(tiny_model), prompt=LONG_PROMPT, max_tokens=4)
    outcome, cold = run_job(queue, runner, spec)
    assert outcome == "succeeded" and engine.model_path == tiny_model
    shown = until_first_prompt_step(cold)
    assert set(shown[:-2]) == {"state loading", "loading"}  # loading, then at the first chunk:
    assert shown[-2:] == ["state running", f"prompt {CHUNK}"]  # running, the chunk read
    [total] = {e.data["total"] for e in cold if e.data.get("phase") == "prompt"}
    assert total > 2 * CHUNK  # the prompt was not read yet when the job went running

    outcome, warm = run_job(queue, runner, spec)
    assert outcome == "succeeded"
    shown = until_first_prompt_step(warm)
    assert set(shown[:-2]) == {"state loading", "loading"}
    assert shown[-2:] == ["state running", "prompt 0"]  # running at once, before any chunk


def test_the_time_limit_covers_a_slow_load(
    queue: Queue, runner: JobRunner, engine: BatchEngine, big_vocab_model: Path
) -> None:
    """A 0.1 s limit on a job whose model takes a second or more to load: the load stops at
    llama.cpp's first 'go on?' once the limit has passed, and the job fails as timed out;
    the model is not left loaded (a load outside the job's stop signal ran to its end)."""
    progress: list[float] = []
    engine.on_load = progress.append  # how far the weights got, as llama.cpp reports it
    spec = JobSpec(model=str(big_vocab_model), prompt="hi", max_tokens=4, timeout=0.1)
    outcome, events = run_job(queue, runner, spec)
    assert outcome == "failed"
    assert events[-1].state is JobState.failed
    job = queue.client.get(events[-1].job_id)
    assert job.state is JobState.failed and job.error == "timed out after 0.1 s"
    assert not progress or progress[-1] < 1.0  # the weights never finished loading
    assert engine.model_path is None  # the load was abandoned: no model stays behind


def test_the_first_tokens_claim_no_time_left(
    queue: Queue, runner: JobRunner, tiny_model: Path
) -> None:
    """The engine's own ETA comes with every token, from the rate since the first one; what
    the job's stream carries is the steady estimate, which has none this early."""
    spec = JobSpec(model=str(tiny_model), prompt="the cat", max_tokens=STEADY_TOKENS - 1)
    outcome, events = run_job(queue, runner, spec)
    assert outcome == "succeeded"
    tokens = [event.data for event in events if event.type == "tokens"]
    assert tokens and tokens[-1]["done"] == STEADY_TOKENS - 1
    assert [data["eta"] for data in tokens] == [None] * len(tokens)
