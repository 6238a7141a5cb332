"""Fixtures of the HTTP API suites: one real queue, worker and API process for the module."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.testing.harness import ApiProcess, Queue, start_queue


@dataclass
class LiveApi:
    """A queue with one worker and the HTTP API in front of it; `stories` is the default model."""

    queue: Queue
    api: ApiProcess
    models: Path  # the folder the API offers models from (model_dirs)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def token(self) -> str:
        return self.api.token

    def http(self, timeout: float | httpx.Timeout = 60, **kwargs: Any) -> httpx.Client:
        """An httpx client with the token, against the API."""
        return httpx.Client(base_url=self.url, headers=self.api.headers, timeout=timeout, **kwargs)


@contextmanager
def running_api(stories_model: Path, models_dir: Path, **env: str) -> Iterator[LiveApi]:
    """A queue in a temporary home with one worker and the API; `stories_model` is the
    default model, `models_dir` the model folder; `env` adds PROMPTSPOOL_* settings."""
    home = Path(tempfile.mkdtemp(prefix="psa-", dir="/tmp"))
    settings = {
        "PROMPTSPOOL_MODEL": str(stories_model),
        "PROMPTSPOOL_MODEL_DIRS": json.dumps([str(models_dir)]),
        "PROMPTSPOOL_HEARTBEAT_TTL": "2",
        # One decode thread: the API, the server and the test get the other core, so a
        # loaded machine slows the jobs without stalling everything else.
        "PROMPTSPOOL_N_THREADS": "1",
        **env,
    }
    queue = start_queue(home, **settings)
    try:
        queue.start_worker()
        api = ApiProcess.start(queue)
        try:
            yield LiveApi(queue, api, models_dir)
        finally:
            api.stop()
    finally:
        queue.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def live_api(
    stories_model: Path, models_dir: Path, tiny_model: Path, slow_model: Path
) -> Iterator[LiveApi]:
    """Shared by a module's tests (a worker and an API take seconds to start): tests leave no
    job running behind them. The models folder holds `tiny` and `slow` (random weights)."""
    with running_api(stories_model, models_dir) as api:
        yield api
