"""Fixtures of the reliability suites: `serve` as a real child process, with a fast heartbeat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.support import FAST_TTL
from worker.testing.harness import ServeProcess


@pytest.fixture
def serve(isolated_home: Path) -> Iterator[ServeProcess]:
    process = ServeProcess.start(isolated_home, FAST_TTL)
    yield process
    if process.process.poll() is None:
        process.stop()
