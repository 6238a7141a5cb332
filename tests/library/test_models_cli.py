"""`promptspool models`, `models search` and `models pull` against a fake Hub, as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.testing.fakehub import FakeHub, tiny_gguf

REPO = "someone/Tiny-GGUF"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    model = tiny_gguf()
    with FakeHub() as served:
        served.add_repo(REPO, {"tiny-Q4_K_M.gguf": model, "tiny-Q8_0.gguf": model[::-1]},
                        downloads=500)  # fmt: skip
        served.add_repo("acme/popular-GGUF", {"p-Q8_0.gguf": model}, downloads=9000)
        yield served


def promptspool(home: Path, hub: FakeHub, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with its own home, this fake Hub, and no real tools' folders (HOME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTSPOOL_", "HF_"))}
    env.update(PROMPTSPOOL_HOME=str(home / "ps"), HOME=str(home), HF_ENDPOINT=hub.url,
               HF_HUB_CACHE=str(home / "hf"), HF_HUB_DISABLE_XET="1")  # fmt: skip
    return subprocess.run([sys.executable, "-m", "worker", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=False)  # fmt: skip


def test_search_pull_and_the_library_finds_the_download(tmp_path: Path, hub: FakeHub) -> None:
    found = promptspool(tmp_path, hub, "models", "search", "GGUF", "--json")
    assert found.returncode == 0, found.stderr
    assert [h["id"] for h in json.loads(found.stdout)] == ["acme/popular-GGUF", REPO]

    several = promptspool(tmp_path, hub, "models", "pull", "acme/popular-GGUF", "nope.gguf")
    assert several.returncode == 1 and "nope.gguf" in several.stderr

    pulled = promptspool(tmp_path, hub, "models", "pull", REPO)  # picks the Q4_K_M
    assert pulled.returncode == 0, pulled.stderr
    path = Path(pulled.stdout.split("\t")[0])
    assert path.name == "tiny-Q4_K_M.gguf" and path.is_relative_to(tmp_path / "hf")

    listed = promptspool(tmp_path, hub, "models", "--json", "--local")
    assert listed.returncode == 0, listed.stderr
    [model] = json.loads(listed.stdout)["models"]
    assert (model["name"], model["source"], model["origin"]) == (
        "tiny-Q4_K_M", "Hugging Face", REPO,
    )  # fmt: skip
    assert model["facts"]["architecture"] == "llama"


def test_no_network_is_said_plainly_and_the_local_list_still_works(
    tmp_path: Path, hub: FakeHub
) -> None:
    url = hub.url
    hub.close()
    failed = promptspool(tmp_path, hub, "models", "search", "tiny")
    assert failed.returncode == 1
    assert url in failed.stderr and "Traceback" not in failed.stderr
    assert promptspool(tmp_path, hub, "models", "--local").returncode == 0
