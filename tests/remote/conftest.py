"""A second PromptSpool queue with its HTTP API is the remote endpoint of these tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker.endpoints.config import Endpoint
from worker.testing.harness import ApiProcess, Queue, start_queue


@dataclass
class Remote:
    """Another queue (its own home, server and worker) and the API in front of it."""

    queue: Queue
    api: ApiProcess
    env: dict[str, Any]  # the API's settings (PROMPTSPOOL_*)

    @property
    def base_url(self) -> str:
        return self.api.url + "/v1"

    def endpoint(self, name: str = "remote", **fields: object) -> Endpoint:
        values: dict[str, object] = {"name": name, "base_url": self.base_url,
                                     "api_key": self.api.token, **fields}  # fmt: skip
        return Endpoint.model_validate(values)

    def stop_api(self) -> None:
        self.api.stop()

    def start_api(self, **env: Any) -> None:
        """The API again, on the same port (clients see it come back)."""
        port = self.api.url.rsplit(":", 1)[1]
        self.api = ApiProcess.start(self.queue, PROMPTSPOOL_HTTP_PORT=port, **{**self.env, **env})


@pytest.fixture
def remote_models(stories_model: Path, slow_model: Path) -> Iterator[Path]:
    """The remote's model folder: stories260K (readable text) and a slow model."""
    folder = Path(tempfile.mkdtemp(prefix="psm-", dir="/tmp"))
    (folder / "stories260K.gguf").symlink_to(stories_model)
    (folder / "slow.gguf").symlink_to(slow_model)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def start_remote(models: Path, **api_env: Any) -> Iterator[Remote]:
    home = Path(tempfile.mkdtemp(prefix="psr-", dir="/tmp"))
    queue = start_queue(home, PROMPTSPOOL_MODEL_DIRS=f'["{models}"]',
                        PROMPTSPOOL_HEARTBEAT_TTL="2", PROMPTSPOOL_PARALLEL_JOBS="4")  # fmt: skip
    try:
        queue.start_worker()
        api = ApiProcess.start(queue, **api_env)
        remote = Remote(queue, api, api_env)
        try:
            yield remote
        finally:
            remote.api.stop()
    finally:
        queue.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def remote(remote_models: Path) -> Iterator[Remote]:
    yield from start_remote(remote_models)


@pytest.fixture
def local(queue: Queue, remote: Remote) -> Queue:
    """This test's own queue, with the remote as endpoint 'remote' and a remote worker."""
    queue.configure(endpoints=[remote.endpoint()], remote_max_tries=8)
    queue.start_worker(remote=True)
    return queue
