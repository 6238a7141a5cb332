"""Hub search, listing and downloads against a fake Hub that huggingface_hub's client talks to."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants, scan_cache_dir, try_to_load_from_cache

from worker.hosting.children import free_loopback_port
from worker.library import transfer
from worker.library.hub import (
    ChecksumMismatch,
    DestinationNotWritable,
    DiskFull,
    DownloadCancelled,
    HubAccessDenied,
    HubNotFound,
    HubUnreachable,
    Progress,
    cached_path,
    download,
    quantization_of,
    repo_gguf_files,
    search_gguf,
)
from worker.testing.fakehub import FakeHub, tiny_gguf

REPO = "acme/tiny-GGUF"
GATED = "acme/gated-GGUF"
Q4 = "tiny-Q4_K_M.gguf"
TOKEN = "hf_accepted"


@pytest.fixture(scope="module")
def model() -> bytes:
    return tiny_gguf()


def point_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """What HF_ENDPOINT does, after import: huggingface_hub reads it into two constants."""
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: bytes) -> Iterator[FakeHub]:
    third = len(model) // 3
    with FakeHub() as served:
        served.add_repo(
            REPO,
            {
                Q4: model,
                "tiny-IQ3_XXS.gguf": model[::-1],
                "tiny-F16-00001-of-00003.gguf": model[:third],
                "tiny-F16-00002-of-00003.gguf": model[third : 2 * third],
                "tiny-F16-00003-of-00003.gguf": model[2 * third :],
                "README.md": b"# tiny\n",
            },
            downloads=500,
            likes=7,
        )
        served.add_repo("acme/popular-GGUF", {"p-Q8_0.gguf": model}, downloads=9000)
        served.add_repo("acme/rare-GGUF", {"r-Q8_0.gguf": model}, downloads=3)
        served.add_repo("acme/tiny-safetensors", {}, downloads=10**6, tags=("safetensors",))
        served.add_repo(GATED, {Q4: model}, downloads=40, gated=True)
        served.tokens.add(TOKEN)
        point_at(monkeypatch, served.url)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield served


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blobs() -> Path:
    return Path(constants.HF_HUB_CACHE) / "models--acme--tiny-GGUF" / "blobs"


def test_search_finds_gguf_repos_most_downloaded_first(fake: FakeHub) -> None:
    hits = search_gguf("GGUF")
    assert [h.id for h in hits] == ["acme/popular-GGUF", REPO, GATED, "acme/rare-GGUF"]
    tiny = hits[1]
    assert (tiny.downloads, tiny.likes, tiny.gated) == (500, 7, False)
    assert tiny.last_modified is not None and tiny.last_modified.year == 2025
    assert hits[2].gated
    assert [h.id for h in search_gguf("tiny", limit=5)] == [REPO]


def test_quantization_from_file_names() -> None:
    names = {
        "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf": "Q4_K_M",
        "llama-2-7b.Q8_0.gguf": "Q8_0",
        "model-f16.gguf": "F16",
        "Big-IQ3_XXS-00001-of-00003.gguf": "IQ3_XXS",
        "gemma-3-UD-Q4_K_XL.gguf": "UD-Q4_K_XL",
        "m-BF16.gguf": "BF16",
        "mmproj-model.gguf": None,
    }
    assert {name: quantization_of(name) for name in names} == names


def test_lists_gguf_files_with_sizes_and_a_split_model_as_one(fake: FakeHub, model: bytes) -> None:
    files = {f.filename: f for f in repo_gguf_files(REPO)}
    assert sorted(files) == ["tiny-F16-00001-of-00003.gguf", "tiny-IQ3_XXS.gguf", Q4]
    q4 = files[Q4]
    assert (q4.size, q4.sha256, q4.quantization, q4.split) == (
        len(model),
        sha256(model),
        "Q4_K_M",
        False,
    )
    split = files["tiny-F16-00001-of-00003.gguf"]
    assert split.split and split.quantization == "F16" and split.size == len(model)
    assert [p.filename for p in split.parts] == [
        f"tiny-F16-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    assert sum(p.size or 0 for p in split.parts) == len(model)


def test_downloads_into_the_shared_cache_with_progress(fake: FakeHub, model: bytes) -> None:
    reports: list[Progress] = []
    path = download(REPO, Q4, progress=reports.append)

    assert path.read_bytes() == model
    assert path == Path(str(try_to_load_from_cache(REPO, Q4)))
    assert cached_path(REPO, Q4) == path
    repo = next(r for r in scan_cache_dir(constants.HF_HUB_CACHE).repos if r.repo_id == REPO)
    assert [f.file_name for r in repo.revisions for f in r.files] == [Q4]
    assert not list(blobs().glob("*.incomplete"))

    assert reports and all(r.total == len(model) for r in reports)
    done = [r.done for r in reports]
    assert done == sorted(done) and done[-1] == len(model)
    gets = fake.served(Q4, "GET")
    assert len(gets) == 1 and gets[0].range is None

    assert download(REPO, Q4) == path  # already there: no second transfer
    assert len(fake.served(Q4, "GET")) == 1


def test_resumes_after_the_connection_drops(fake: FakeHub, model: bytes) -> None:
    cut = len(model) // 2
    fake.drop_after[Q4] = cut
    path = download(REPO, Q4)

    assert sha256(path.read_bytes()) == sha256(model)
    gets = fake.served(Q4, "GET")
    assert [g.range for g in gets] == [None, f"bytes={cut}-"]
    assert gets[1].status == 206


def test_cancel_stops_quickly_keeps_the_partial_file_and_the_next_call_resumes(
    fake: FakeHub, model: bytes
) -> None:
    fake.rate = 100_000  # a few seconds for the whole file
    cancel = threading.Event()
    midway = threading.Event()
    cancelled_at: list[float] = []

    reports: list[Progress] = []

    def watch(p: Progress) -> None:
        reports.append(p)
        if p.done >= len(model) // 4:
            midway.set()

    def press_cancel() -> None:
        assert midway.wait(20)
        cancelled_at.append(time.monotonic())
        cancel.set()

    presser = threading.Thread(target=press_cancel)
    presser.start()
    with pytest.raises(DownloadCancelled):
        download(REPO, Q4, progress=watch, cancel=cancel)
    stopped = time.monotonic()
    presser.join()
    assert stopped - cancelled_at[0] < 1.0
    assert any(r.speed > 0 and r.eta is not None for r in reports)

    [partial] = blobs().glob("*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept < len(model)
    assert cached_path(REPO, Q4) is None

    fake.rate = None
    path = download(REPO, Q4)
    assert path.read_bytes() == model
    assert fake.served(Q4, "GET")[-1].range == f"bytes={kept}-"
    assert not partial.exists()


def test_a_corrupted_file_is_refused_and_removed(fake: FakeHub, model: bytes) -> None:
    fake.corrupt.add(Q4)
    with pytest.raises(ChecksumMismatch) as refused:
        download(REPO, Q4)
    message = str(refused.value)
    assert Q4 in message and sha256(model) in message and refused.value.actual in message
    assert refused.value.actual != sha256(model)
    assert not any(blobs().iterdir())
    assert cached_path(REPO, Q4) is None


def test_a_split_model_downloads_every_part(fake: FakeHub, model: bytes) -> None:
    reports: list[Progress] = []
    path = download(REPO, "tiny-F16-00002-of-00003.gguf", progress=reports.append)

    assert path.name == "tiny-F16-00001-of-00003.gguf"
    parts = sorted(path.parent.glob("tiny-F16-*.gguf"))
    assert b"".join(p.read_bytes() for p in parts) == model
    assert cached_path(REPO, "tiny-F16-00001-of-00003.gguf") == path
    assert reports[-1].done == reports[-1].total == len(model)


def test_downloads_into_a_folder(fake: FakeHub, model: bytes, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    path = download(REPO, Q4, to=folder)
    assert path == folder / Q4 and path.read_bytes() == model
    assert cached_path(REPO, Q4, to=folder) == path
    assert download(REPO, Q4, to=folder) == path
    assert len(fake.served(Q4, "GET")) == 1


def test_a_gated_repo_asks_for_hf_token(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubAccessDenied) as denied:
        download(GATED, Q4)
    message = str(denied.value)
    assert "HF_TOKEN" in message and "huggingface-cli login" in message
    assert f"{fake.url}/{GATED}" in message

    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted")
    with pytest.raises(HubAccessDenied, match="HF_TOKEN"):
        download(GATED, Q4)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert download(GATED, Q4).is_file()
    assert fake.served(Q4, "GET")[-1].authorization == f"Bearer {TOKEN}"


def test_unknown_repo_or_file(fake: FakeHub) -> None:
    with pytest.raises(HubNotFound):
        download("acme/nothing", Q4)
    with pytest.raises(HubNotFound):
        download(REPO, "missing.gguf")
    with pytest.raises(HubNotFound):
        repo_gguf_files("acme/nothing")


def test_an_unreachable_hub_says_the_library_still_works(
    fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = download(REPO, Q4)
    closed = f"http://127.0.0.1:{free_loopback_port()}"
    point_at(monkeypatch, closed)
    assert download(REPO, Q4) == kept  # what is in the cache still opens
    for attempt in (lambda: search_gguf("x"), lambda: download(REPO, "tiny-IQ3_XXS.gguf")):
        with pytest.raises(HubUnreachable) as unreachable:
            attempt()
        assert closed in str(unreachable.value)
        assert "local model library still works" in str(unreachable.value)


def test_too_little_disk_space(fake: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "free_bytes", lambda _: 10)
    with pytest.raises(DiskFull, match=Q4):
        download(REPO, Q4)


def test_an_unwritable_destination(fake: FakeHub, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DestinationNotWritable, match="a-file"):
        download(REPO, Q4, to=blocker / "models")


def test_honours_the_environment_variables(fake: FakeHub, tmp_path: Path) -> None:
    """HF_ENDPOINT, HF_HUB_CACHE and HF_TOKEN, read by huggingface_hub when it is imported."""
    cache = tmp_path / "elsewhere"
    env = {
        **os.environ,
        "HF_ENDPOINT": fake.url,
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_XET": "1",
    }
    script = f"from worker.library.hub import download; print(download({GATED!r}, {Q4!r}))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(cache)
