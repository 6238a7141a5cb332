"""The model library against real files laid out as each tool lays them out, broken ones too."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from worker.library import listing as listing_module
from worker.library.fit import CPU_ONLY, FITS_GPU, TOO_LARGE, Room, fit_of
from worker.library.listing import Listing, ModelLibrary
from worker.library.places import GPT4ALL, HUGGING_FACE, LLAMA_CPP, LM_STUDIO, OLLAMA, Place
from worker.modelfile.info import read_model_info
from worker.settings import Settings

ROOM = Room(ram=64 * 2**30, vram=None)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return tiny_model


def put(path: Path, source: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return path


def hub_cache(root: Path, repo: str, files: dict[str, Path], commit: str = "c0ffee" * 6) -> Path:
    """A Hugging Face cache entry as huggingface_hub writes it: blobs by hash, a snapshot of
    relative links to them, the ref naming the commit."""
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    for n, (name, source) in enumerate(files.items()):
        blob = put(base / "blobs" / f"{n:064x}", source)
        link = base / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return root


def ollama_model(store: Path, name: str, tag: str, digest: str, source: Path | None) -> None:
    """A manifest (registry.ollama.ai/NAMESPACE/NAME/TAG) and its model blob (if given)."""
    namespace, _, model = name.rpartition("/")
    manifest = store / "manifests" / "registry.ollama.ai" / (namespace or "library") / model / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
               "size": 1}, {"mediaType": "application/vnd.ollama.image.template",
                            "digest": "sha256:" + "e" * 64, "size": 1}]  # fmt: skip
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    if source is not None:
        put(store / "blobs" / f"sha256-{digest}", source)


@pytest.fixture
def machine(tmp_path: Path, gguf: Path) -> tuple[Settings, list[Place]]:
    """Models where a user's tools keep them, and broken entries among them."""
    mine = tmp_path / "mine"
    put(mine / "alpha-Q4_K_M.gguf", gguf)
    put(mine / "big-00001-of-00002.gguf", gguf)
    (mine / "big-00002-of-00002.gguf").write_bytes(b"\0" * 1000)
    put(mine / "gap-00001-of-00003.gguf", gguf)
    put(mine / "gap-00003-of-00003.gguf", gguf)
    (mine / "dangling.gguf").symlink_to(mine / "gone.gguf")
    (mine / "cut.gguf").write_bytes(gguf.read_bytes()[:200])
    (mine / "notes.txt").write_text("not a model")
    readme = mine / "notes.txt"
    hf = hub_cache(
        tmp_path / "hf", "someone/Tiny-GGUF", {"tiny-q8_0.gguf": gguf, "README.md": readme}
    )
    lms = tmp_path / "lmstudio"
    put(lms / "lmstudio-community" / "Tiny-GGUF" / "tiny-lms.gguf", gguf)
    gpt = tmp_path / "gpt4all"
    put(gpt / "tiny-gpt4all.gguf", gguf)
    olla = tmp_path / "ollama"
    ollama_model(olla, "tiny", "latest", "a" * 64, gguf)
    ollama_model(olla, "someone/tiny", "q8", "b" * 64, gguf)
    ollama_model(olla, "lost", "latest", "c" * 64, None)
    cpp = tmp_path / "llamacpp"
    put(cpp / "someone_Tiny-GGUF_tiny-cpp.gguf", gguf)
    places = [
        Place(HUGGING_FACE, hf), Place(LM_STUDIO, lms), Place(GPT4ALL, gpt), Place(OLLAMA, olla),
        Place(LLAMA_CPP, cpp), Place(LM_STUDIO, tmp_path / "none"),
    ]  # fmt: skip
    settings = Settings(model_dirs=[mine], model=mine / "alpha-Q4_K_M.gguf")
    return settings, places


def by_name(listing: Listing) -> dict[str, tuple[str, str]]:
    return {m.name: (m.source, m.origin) for m in listing.models}


def test_every_tools_layout_is_found_and_broken_entries_say_why(
    machine: tuple[Settings, list[Place]], gguf: Path
) -> None:
    settings, places = machine
    listing = ModelLibrary(settings, places).list(ROOM)
    assert by_name(listing) == {
        "alpha-Q4_K_M": ("default", str(settings.model_dirs[0])),  # the default model, once
        "big": ("folder", ""),
        "tiny-q8_0": (HUGGING_FACE, "someone/Tiny-GGUF"),
        "tiny-lms": (LM_STUDIO, "lmstudio-community/Tiny-GGUF"),
        "tiny-gpt4all": (GPT4ALL, ""),
        "tiny:latest": (OLLAMA, "registry.ollama.ai/library/tiny"),
        "someone/tiny:q8": (OLLAMA, "registry.ollama.ai/someone/tiny"),
        "someone_Tiny-GGUF_tiny-cpp": (LLAMA_CPP, ""),
    }
    big = next(m for m in listing.models if m.name == "big")
    assert big.parts == 2 and big.size == gguf.stat().st_size + 1000
    tiny = next(m for m in listing.models if m.name == "tiny:latest")
    facts = tiny.facts
    assert facts.architecture == "llama" and facts.context_length == 4096
    assert facts.parameters and facts.quantization and facts.kv_per_token
    assert tiny.fit == CPU_ONLY and tiny.needs > tiny.size
    reasons = {s.path.name: s.reason for s in listing.skipped}
    assert reasons["dangling.gguf"].startswith("a broken link")
    assert "gap-00001-of-00003.gguf" in reasons
    assert reasons["gap-00001-of-00003.gguf"] == "a split model missing part 2 of 3"
    assert "cut.gguf" in reasons and "cut.gguf" in reasons["cut.gguf"]
    assert reasons[f"sha256-{'c' * 64}"] == f"lost:latest: its blob sha256-{'c' * 64} is missing"


def test_an_unreadable_folder_is_skipped_with_its_reason(
    machine: tuple[Settings, list[Place]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, places = machine
    locked = places[1].path / "lmstudio-community"
    real_scandir: Callable[..., object] = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listing = ModelLibrary(settings, places).list(ROOM)
    assert "tiny-lms" not in by_name(listing)
    [skipped] = [s for s in listing.skipped if s.path == locked]
    assert skipped.reason == "cannot be read (Permission denied)"


def test_headers_are_read_once_and_again_when_a_file_changes(
    machine: tuple[Settings, list[Place]], monkeypatch: pytest.MonkeyPatch, gguf: Path
) -> None:
    settings, places = machine
    first = ModelLibrary(settings, places).list(ROOM)
    assert oct(ModelLibrary(settings).cache_path.stat().st_mode & 0o777) == "0o600"
    reads: list[Path] = []
    real = read_model_info

    def counted(path: str | Path) -> object:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(listing_module, "read_model_info", counted)
    again = ModelLibrary(settings, places).list(ROOM)
    assert reads == [] and by_name(again) == by_name(first)
    assert [s.reason for s in again.skipped] == [s.reason for s in first.skipped]
    changed = settings.model_dirs[0] / "alpha-Q4_K_M.gguf"
    changed.write_bytes(gguf.read_bytes() + b"\0" * 64)
    ModelLibrary(settings, places).list(ROOM)
    assert reads == [changed]


def test_fit_weighs_weights_and_context_against_free_memory() -> None:
    gib = 2**30
    assert fit_of(4 * gib, Room(ram=16 * gib, vram=8 * gib)) == FITS_GPU
    assert fit_of(12 * gib, Room(ram=16 * gib, vram=8 * gib)) == CPU_ONLY
    assert fit_of(12 * gib, Room(ram=16 * gib, vram=None)) == CPU_ONLY
    assert fit_of(20 * gib, Room(ram=16 * gib, vram=8 * gib)) == TOO_LARGE
