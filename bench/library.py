"""The model library's scan: 500 GGUF files across every tool's layout, cold and warm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, summary
from worker.library.listing import ModelLibrary
from worker.library.places import GPT4ALL, HUGGING_FACE, LLAMA_CPP, LM_STUDIO, OLLAMA, Place
from worker.modelfile.info import clear_cache
from worker.settings import Settings
from worker.testing.tinymodel import write_tiny_llama

LAYOUT = {"folder": 200, HUGGING_FACE: 100, LM_STUDIO: 100, OLLAMA: 50, LLAMA_CPP: 50}


def lay_out(root: Path) -> tuple[Settings, list[Place]]:
    """500 distinct small GGUF files, laid out as each tool lays them out."""
    model = write_tiny_llama(root / "seed.gguf")
    n = 0

    def copy(path: Path) -> Path:
        nonlocal n
        n += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model, path)
        with path.open("ab") as handle:  # distinct files: sizes differ, nothing is shared
            handle.write(b"\0" * n)
        return path

    for i in range(LAYOUT["folder"]):
        copy(root / "mine" / f"group-{i % 10}" / f"model-{i}.gguf")
    hub = root / "hf"
    for i in range(LAYOUT[HUGGING_FACE]):
        repo = hub / f"models--org--repo-{i // 10}"
        blob = copy(repo / "blobs" / f"{i:064x}")
        link = repo / "snapshots" / ("ab" * 20) / f"file-{i}.gguf"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text("ab" * 20)
    for i in range(LAYOUT[LM_STUDIO]):
        copy(root / "lms" / f"publisher-{i // 20}" / f"repo-{i // 5}" / f"m-{i}.gguf")
    store = root / "ollama"
    for i in range(LAYOUT[OLLAMA]):
        digest = f"{i:064x}"
        copy(store / "blobs" / f"sha256-{digest}")
        manifest = store / "manifests" / "registry.ollama.ai" / "library" / f"m{i}" / "latest"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        layer = {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}
        manifest.write_text(json.dumps({"layers": [layer]}))
    for i in range(LAYOUT[LLAMA_CPP]):
        copy(root / "cpp" / f"org_repo_m-{i}.gguf")
    places = [Place(HUGGING_FACE, hub), Place(LM_STUDIO, root / "lms"),
              Place(GPT4ALL, root / "gpt4all"), Place(OLLAMA, store),
              Place(LLAMA_CPP, root / "cpp")]  # fmt: skip
    return Settings(home=root / "home", model_dirs=[root / "mine"]), places


def _timed(settings: Settings, places: list[Place]) -> tuple[float, int]:
    started = time.perf_counter()
    listing = ModelLibrary(settings, places).list()
    return time.perf_counter() - started, len(listing.models)


def scan(rounds: int = 5) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="psl-", dir="/tmp"))
    try:
        settings, places = lay_out(root)
        cold: list[float] = []
        warm: list[float] = []
        found = 0
        for _ in range(rounds):
            settings.paths.data.joinpath("library-cache.json").unlink(missing_ok=True)
            clear_cache()
            seconds, found = _timed(settings, places)
            cold.append(seconds)
            clear_cache()  # the header cache of this process: only the library's file helps
            warm.append(_timed(settings, places)[0])
        command = _cli_warm(root, settings)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "files": sum(LAYOUT.values()),
        "models_found": found,
        "cold_ms": summary([s * 1000 for s in cold]),
        "warm_ms": summary([s * 1000 for s in warm]),
        "cli_models_local_warm_ms": command,
    }


def _cli_warm(root: Path, settings: Settings) -> dict[str, float]:
    """`promptspool models --local` as a whole process, over the folder source (warm)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env.update(PROMPTSPOOL_HOME=str(root / "home"),
               PROMPTSPOOL_MODEL_DIRS=json.dumps([str(root / "mine")]),
               HOME=str(root / "nobody"))  # fmt: skip
    command = [sys.executable, "-m", "worker", "models", "--local", "--json"]
    subprocess.run(command, env=env, capture_output=True, check=True)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - started) * 1000)
    return summary(times)


def run() -> dict[str, Any]:
    return emit("library_scan", scan())
