"""Shared fixtures: isolated homes, tiny GGUF models and a real queue with workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.testing.harness import NO_COMMAND_SERVER, Queue, start_queue
from worker.testing.tinymodel import CHATML_TEMPLATE, write_tiny_llama

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


@pytest.fixture(autouse=True)
def isolated_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own PROMPTSPOOL_HOME (short: unix socket paths are limited)."""
    for name in list(os.environ):
        if name.startswith("PROMPTSPOOL_"):
            monkeypatch.delenv(name)
    home = Path(tempfile.mkdtemp(prefix="ps-", dir="/tmp"))
    monkeypatch.setenv("PROMPTSPOOL_HOME", str(home))
    for name, value in NO_COMMAND_SERVER.items():
        monkeypatch.setenv(name, value)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> Path:
    """A random-weight Llama that never emits end-of-text: jobs run to max_tokens."""
    return write_tiny_llama(models_dir / "tiny.gguf")


@pytest.fixture(scope="session")
def slow_model(models_dir: Path) -> Path:
    """Wider and deeper than `tiny_model`: slow enough to act on a job mid-generation."""
    return write_tiny_llama(models_dir / "slow.gguf", hidden=512, layers=8, heads=8, ffn=1024)


@pytest.fixture(scope="session")
def chat_model(models_dir: Path) -> Path:
    return write_tiny_llama(models_dir / "chat.gguf", chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="session")
def stories_model() -> Path:
    """A real 260K-parameter story model, for readable text."""
    path = SHARED_MODELS / "stories260K.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture
def queue(isolated_home: Path) -> Iterator[Queue]:
    """A bundled server with no worker yet; `queue.start_worker()` adds real ones."""
    q = start_queue(isolated_home, PROMPTSPOOL_HEARTBEAT_TTL="2")
    yield q
    q.close()


@pytest.fixture
def running_queue(queue: Queue) -> Queue:
    """A queue with one worker ready."""
    queue.start_worker()
    return queue
