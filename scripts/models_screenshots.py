"""Screenshots of the Models view and the welcome screen's found models (offscreen, fake Hub).

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m scripts.models_screenshots [--out DIR]

Writes models-view.png (the library: tiny real GGUF models laid out as a models folder, the
Hugging Face cache, LM Studio and Ollama keep them, one broken file), models-download.png
(the Download section mid-download from a local fake Hub) and first-run-models.png (the
welcome screen listing the models found). Fits are judged against a made-up amount of
memory, so that each kind shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from huggingface_hub import constants
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from desktop.app import make_application
from desktop.jobs.model import JobsModel
from desktop.services.hubclient import RealHub
from desktop.services.library import LibraryService
from desktop.services.uistate import UiState
from desktop.window.mainwindow import MainWindow
from desktop.window.modelstable import Column
from desktop.window.modelsview import ModelsView
from scripts.shotkit import save, wait_until
from worker.library.fit import Room
from worker.library.listing import ModelLibrary
from worker.library.places import HUGGING_FACE, LM_STUDIO, OLLAMA, Place
from worker.settings import load_settings
from worker.testing.fakehub import FakeHub, tiny_gguf
from worker.testing.tinymodel import write_tiny_llama

TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"
MB = 1_000_000


def lay_out(root: Path) -> tuple[Path, list[Place]]:
    """Models as each tool keeps them: a models folder, the Hub cache, LM Studio, Ollama."""
    src = root / "src"
    src.mkdir()

    def model(name: str, hidden: int, chat: bool = False, seed: int = 0) -> Path:
        template = TEMPLATE if chat else None
        return write_tiny_llama(src / name, hidden=hidden, ffn=hidden * 2,
                                chat_template=template, seed=seed)  # fmt: skip

    folder = root / "models"
    folder.mkdir()
    shutil.copyfile(model("a", 64, chat=True), folder / "tinyllama-chat.gguf")
    shutil.copyfile(model("b", 32, seed=1), folder / "tiny-base.gguf")
    (folder / "notes.gguf").write_bytes(b"not a model, only a name that says so")
    hub = root / "hf"
    commit = "c0ffee" * 6 + "c0ff"
    repo = hub / "models--acme--TinyStories-Chat-GGUF"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    blob = shutil.copyfile(model("c", 256, chat=True, seed=2), repo / "blobs" / ("ab" * 32))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "tinystories-chat.gguf").symlink_to(os.path.relpath(blob, snapshot))
    studio = root / "lmstudio"
    (studio / "lmstudio-community" / "Tiny-Coder-GGUF").mkdir(parents=True)
    coder = studio / "lmstudio-community" / "Tiny-Coder-GGUF" / "tiny-coder.gguf"
    shutil.copyfile(model("d", 384, chat=True, seed=3), coder)
    ollama = root / "ollama"
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "tinyllama" / "latest"
    manifest.parent.mkdir(parents=True)
    digest = "d" * 64
    layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    (ollama / "blobs").mkdir()
    shutil.copyfile(model("e", 512, chat=True, seed=4), ollama / "blobs" / f"sha256-{digest}")
    places = [Place(HUGGING_FACE, hub), Place(LM_STUDIO, studio), Place(OLLAMA, ollama)]
    return folder, places


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.models_screenshots")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="ps-m-"))
    os.environ["PROMPTSPOOL_HOME"] = str(home)
    app = make_application()
    try:
        scenes(app, out, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def scenes(app: QApplication, out: Path, home: Path) -> None:
    folder, places = lay_out(home)
    settings = load_settings()
    settings.model_dirs = [folder]
    settings.save()
    # Memory made up so that the smallest fit on the GPU, the middle ones only in RAM, the
    # largest in neither.
    needs = sorted(m.needs for m in ModelLibrary(settings, places).list(Room(2**50, 2**50)).models)
    room = Room(ram=needs[-1] - 1, vram=needs[1])

    window = MainWindow(JobsModel(), settings, UiState(settings.paths.config),
                        LibraryService(settings, places))  # fmt: skip
    window.library.room = room
    window.set_models([], None)
    window.resize(1280, 800)
    window.show()
    wait_until(lambda: len(window.found.use_buttons) > 0)
    save(window, out / "first-run-models.png")

    view = ModelsView(window.library, RealHub(), window)
    view.show()
    page = view.page
    wait_until(lambda: len(page.model.rows) == 5)
    page.table.sortByColumn(Column.size, Qt.SortOrder.DescendingOrder)
    page.select_path(str(next(m.path for m in page.model.rows if m.source == LM_STUDIO)))
    page.toggle_skipped()
    save(view, out / "models-view.png")
    download_scene(view, out, home)
    view.close()
    window.close_for_good()


def download_scene(view: ModelsView, out: Path, home: Path) -> None:
    """The Download section mid-download from a fake Hub (slow on purpose)."""
    constants.HF_HUB_CACHE = str(home / "hf-downloads")
    with FakeHub() as hub:
        model = tiny_gguf(seed=5)
        big = model + bytes(6 * MB)  # padded: a download long enough to catch mid-way
        hub.add_repo("bartowski/TinyStories-Instruct-GGUF",
                     {"TinyStories-Instruct-Q4_K_M.gguf": big[: 4 * MB],
                      "TinyStories-Instruct-Q8_0.gguf": big,
                      "TinyStories-Instruct-F16.gguf": big + bytes(6 * MB),
                      "README.md": b"# TinyStories"}, downloads=48_210, likes=310)  # fmt: skip
        hub.add_repo("acme/TinyStories-Chat-GGUF", {"tinystories-chat-Q4_0.gguf": model},
                     downloads=9_120, likes=42)  # fmt: skip
        hub.add_repo("meta-tiny/TinyStories-Gated-GGUF", {"tiny-Q4_K_M.gguf": model},
                     downloads=1_530, gated=True)  # fmt: skip
        hub.rate = 1_500_000
        constants.ENDPOINT = hub.url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        view.show_section("download")
        section = view.download
        section.query.setText("tinystories")
        section.search()
        wait_until(lambda: section.repos.count() > 0)
        section.choose_repo("bartowski/TinyStories-Instruct-GGUF")
        wait_until(lambda: section.files.rowCount() > 0)
        section.choose_file("TinyStories-Instruct-Q8_0.gguf")
        section.start()
        wait_until(lambda: section.progress.maximum() > 0 and section.progress.value() > 350)
        save(view, out / "models-download.png")
        section.cancel()
        wait_until(lambda: not section.busy)


if __name__ == "__main__":
    main()
