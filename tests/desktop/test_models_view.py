"""The Models view, the picker's models on this machine, the welcome screen's found models."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants
from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from desktop.jobs.model import JobsModel
from desktop.services.hubclient import RealHub
from desktop.services.library import LibraryService
from desktop.services.librarymarks import LibraryMarks
from desktop.services.uistate import UiState
from desktop.window.mainwindow import MainWindow
from desktop.window.modelpicker import ON_THIS_MACHINE, ModelPicker
from desktop.window.modelstable import Column
from desktop.window.modelsview import ModelsView
from tests.desktop.support import close_app, open_app
from worker.library.places import HUGGING_FACE, Place
from worker.settings import Settings, load_settings
from worker.testing.fakehub import FakeHub, tiny_gguf
from worker.testing.harness import Queue
from worker.testing.tinymodel import write_tiny_llama

WAIT_MS = 20_000
TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real GGUF models of different sizes (written once) and a broken one."""
    folder = tmp_path_factory.mktemp("sources")
    broken = folder / "broken.gguf"
    broken.write_bytes(b"GGUF but not really" * 10)
    return {
        "alpha-small": write_tiny_llama(folder / "a.gguf", hidden=32, ffn=64),
        "bravo-large": write_tiny_llama(folder / "b.gguf", hidden=256, ffn=512, seed=1),
        "charlie-chat": write_tiny_llama(
            folder / "c.gguf", hidden=128, ffn=256, chat_template=TEMPLATE, seed=2
        ),
        "broken": broken,
    }


@pytest.fixture
def settings(isolated_home: Path, sources: dict[str, Path]) -> Settings:
    """A models folder with the three models (one under publisher/repo) and the broken file."""
    folder = isolated_home / "models"
    (folder / "acme" / "chat-repo").mkdir(parents=True)
    for name, source in sources.items():
        sub = folder / "acme" / "chat-repo" if name == "charlie-chat" else folder
        shutil.copyfile(source, sub / f"{name}.gguf")
    settings = load_settings()
    settings.model_dirs = [folder]
    settings.save()
    return settings


def library_of(settings: Settings, places: list[Place] | None = None) -> LibraryService:
    """The settings' folders only: other tools' folders on this machine are kept out."""
    return LibraryService(settings, places=places or [])


@pytest.fixture
def view(qtbot: QtBot, settings: Settings) -> Iterator[ModelsView]:
    shown = ModelsView(library_of(settings), RealHub())
    qtbot.addWidget(shown)
    listed(qtbot, shown)
    yield shown


def listed(qtbot: QtBot, view: ModelsView) -> None:
    qtbot.waitUntil(
        lambda: view.library.listing is not None and not view.library.busy, timeout=WAIT_MS
    )


def names(view: ModelsView) -> list[str]:
    return [m.name for m in view.page.visible_models()]


def select(view: ModelsView, name: str) -> None:
    model = next(m for m in view.page.model.rows if m.name == name)
    assert view.page.select_path(str(model.path))


def test_the_view_lists_searches_and_sorts_sizes_as_numbers(qtbot: QtBot, view: ModelsView) -> None:
    page = view.page
    assert sorted(names(view)) == ["alpha-small", "bravo-large", "charlie-chat"]
    assert page.count.text() == "3 models"
    charlie = next(m for m in page.model.rows if m.name == "charlie-chat")
    row = page.model.rows.index(charlie)
    cells = [page.model.index(row, c).data() for c in Column]
    assert cells[Column.origin] == str(Path("acme") / "chat-repo")
    assert cells[Column.source] == "folder" and cells[Column.architecture] == "llama"
    assert cells[Column.template] == "yes" and cells[Column.context] == "4,096"
    assert page.model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole).startswith(str(charlie.path))

    page.search.setText("acme")  # the origin
    assert names(view) == ["charlie-chat"]
    page.search.setText("llama bravo")  # every word, in any column searched
    assert names(view) == ["bravo-large"]
    page.search.setText("")

    page.table.sortByColumn(Column.size, Qt.SortOrder.AscendingOrder)
    sizes = [m.size for m in page.visible_models()]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert names(view) == ["alpha-small", "charlie-chat", "bravo-large"]
    page.table.sortByColumn(Column.size, Qt.SortOrder.DescendingOrder)
    assert names(view) == ["bravo-large", "charlie-chat", "alpha-small"]


def test_the_skipped_line_tells_why(qtbot: QtBot, view: ModelsView) -> None:
    page = view.page
    assert not page.skipped_link.isHidden() and "Skipped: 1" in page.skipped_link.text()
    assert page.skipped.isHidden()
    page.skipped_link.linkActivated.emit("#skipped")
    assert not page.skipped.isHidden()
    text = page.skipped.toPlainText()
    assert "broken.gguf" in text and "(folder): " in text
    reason = view.library.listing.skipped[0].reason if view.library.listing else ""
    assert reason and reason in text


def test_use_as_default_saves_the_settings(qtbot: QtBot, view: ModelsView) -> None:
    select(view, "charlie-chat")
    page = view.page
    assert page.use_button.isEnabled() and page.use_button.text() == "Use as default"
    with qtbot.waitSignal(view.default_changed, timeout=WAIT_MS) as changed:
        page.use_button.click()
    path = next(m.path for m in page.model.rows if m.name == "charlie-chat")
    assert load_settings().model == path
    emitted = changed.args[0]
    assert isinstance(emitted, Settings) and emitted.model == path
    assert emitted.model_dirs == view.library.settings.model_dirs  # the rest kept
    listed(qtbot, view)  # listed again: the default model
    select(view, "charlie-chat")
    assert not page.use_button.isEnabled() and page.use_button.text() == "The default model"


def test_remove_from_list_hides_it_for_good_and_never_deletes_it(
    qtbot: QtBot, view: ModelsView, settings: Settings
) -> None:
    select(view, "alpha-small")
    page = view.page
    assert page.delete_button.isHidden()  # PromptSpool did not download it
    model = page.selected()
    assert model is not None
    assert not page.delete(model)  # not even when asked directly
    page.hide_button.click()
    assert "alpha-small" not in names(view) and model.path.is_file()
    assert "no longer listed" in page.message.text()

    again = ModelsView(library_of(settings), RealHub())  # a new session
    qtbot.addWidget(again)
    listed(qtbot, again)
    assert sorted(names(again)) == ["bravo-large", "charlie-chat"]
    marks = LibraryMarks(settings.paths.data)
    assert marks.is_hidden(model.path)
    assert marks.path.stat().st_mode & 0o777 == 0o600, "the user's alone"
    picker = ModelPicker()
    qtbot.addWidget(picker)
    picker.set_library(again.library)
    assert str(model.path) not in picker.choices() and len(picker.library_models()) == 2


def test_the_picker_offers_the_library_after_the_recent_models(
    qtbot: QtBot, settings: Settings
) -> None:
    library = library_of(settings)
    picker = ModelPicker()
    qtbot.addWidget(picker)
    picker.set_settings(settings)
    picker.set_library(library)
    recent = "/models/recent.gguf"
    picker.set_models([recent], recent)
    picker.show()  # shown: the library is listed, off the GUI thread
    qtbot.waitUntil(lambda: len(picker.library_models()) == 3, timeout=WAIT_MS)
    combo = picker.combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    header = texts.index(ON_THIS_MACHINE)
    assert combo.itemData(0) == recent and header > 0
    model = combo.model()
    assert isinstance(model, QStandardItemModel)
    header_item = model.item(header)
    assert header_item is not None and not header_item.isEnabled()
    local = [texts[i] for i in range(header + 1, combo.count())]
    assert any(t.startswith("charlie-chat  ·  ") and t.endswith(m.fit)
               for t in local for m in library.models() if m.name == "charlie-chat")  # fmt: skip
    assert picker.choices()[0] == recent and set(picker.choices()[1:]) == {
        str(m.path) for m in library.models()
    }
    assert picker.current_model() == recent  # the listing changed nothing chosen
    charlie = next(m for m in library.models() if m.name == "charlie-chat")
    picker.select(str(charlie.path))
    assert picker.current_model() == str(charlie.path)


def welcome_window(qtbot: QtBot, settings: Settings) -> MainWindow:
    window = MainWindow(JobsModel(), settings, UiState(settings.paths.config), library_of(settings))
    qtbot.addWidget(window)
    window.set_models([], None)  # no model chosen yet: the welcome screen
    return window


def test_the_welcome_screen_lists_found_models_and_uses_one(
    qtbot: QtBot, settings: Settings
) -> None:
    window = welcome_window(qtbot, settings)
    found = window.found
    assert not found.isHidden() and window.detail.pages.currentIndex() == 0
    qtbot.waitUntil(lambda: len(found.use_buttons) == 3, timeout=WAIT_MS)
    assert found.heading.text() == "Found on this machine" and found.download_button.isHidden()
    chat = next(p for p in found.use_buttons if p.endswith("charlie-chat.gguf"))
    with qtbot.waitSignal(window.use_model_requested, timeout=WAIT_MS) as used:
        found.use_buttons[chat].click()
    assert used.args == [chat]
    window.choose_model(chat)  # what the commands do with it
    assert window.current_model() == chat and found.isHidden()


def test_the_welcome_screen_offers_a_download_when_nothing_is_found(
    qtbot: QtBot, isolated_home: Path
) -> None:
    window = welcome_window(qtbot, load_settings())
    found = window.found
    qtbot.waitUntil(lambda: not found.download_button.isHidden(), timeout=WAIT_MS)
    assert found.heading.text() == "No models found on this machine"
    with qtbot.waitSignal(window.models_requested, timeout=WAIT_MS) as asked:
        found.download_button.click()
    assert asked.args == ["download"]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake Hub (two GGUF repos) that huggingface_hub talks to; its cache in tmp_path."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub() as fake:
        fake.rate = 400_000  # slow enough for progress on the way
        fake.add_repo("acme/Tiny-GGUF", {"tiny-Q8_0.gguf": tiny_gguf(seed=3), "README.md": b"hi"},
                      downloads=50)  # fmt: skip
        fake.add_repo("acme/Other-GGUF", {"other-Q4_K_M.gguf": b"x"}, downloads=900)
        fake.add_repo("acme/Gated-GGUF", {"gated-Q4_0.gguf": b"y" * 100}, downloads=5, gated=True)
        monkeypatch.setattr(constants, "ENDPOINT", fake.url)  # as HF_ENDPOINT would set them
        template = fake.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        yield fake


def download_tiny(qtbot: QtBot, view: ModelsView) -> list[str]:
    """Search, choose the repo and its file, download it; the progress texts on the way."""
    view.show_section("download")
    section = view.download
    assert view.tabs.currentWidget() is section
    section.query.setText("gguf")
    with qtbot.waitSignal(section.searched, timeout=WAIT_MS):
        section.search_button.click()
    assert section.repos.count() == 3
    assert section.repos.item(0).text().startswith("acme/Other-GGUF")  # most downloaded
    assert "gated (needs HF_TOKEN)" in section.repos.item(2).text()
    with qtbot.waitSignal(section.files_listed, timeout=WAIT_MS):
        assert section.choose_repo("acme/Tiny-GGUF")
    assert section.files.rowCount() == 1  # the GGUF files only
    assert section.files.item(0, 1).text() == "Q8_0"  # type: ignore[union-attr]
    assert not section.download_button.isEnabled()
    assert section.choose_file("tiny-Q8_0.gguf") and section.download_button.isEnabled()
    seen: list[str] = []

    def ended() -> bool:
        seen.append(section.progress_label.text())
        return not section.busy

    section.download_button.click()
    assert section.cancel_button.isEnabled()
    qtbot.waitUntil(ended, timeout=WAIT_MS)
    assert not section.status.styleSheet(), section.status.text()  # no error
    assert "Downloaded tiny-Q8_0.gguf" in section.status.text()
    assert section.progress.value() == section.progress.maximum()
    return seen


def test_a_download_from_the_hub_is_listed_selected_and_deletable(
    qtbot: QtBot, settings: Settings, hub: FakeHub
) -> None:
    cache = Path(constants.HF_HUB_CACHE)
    view = ModelsView(library_of(settings, [Place(HUGGING_FACE, cache)]), RealHub())
    qtbot.addWidget(view)
    listed(qtbot, view)
    seen = download_tiny(qtbot, view)
    assert any(" of " in text for text in seen)  # bytes of the total, on the way
    qtbot.waitUntil(lambda: view.tabs.currentWidget() is view.page, timeout=WAIT_MS)
    listed(qtbot, view)
    page = view.page
    qtbot.waitUntil(lambda: page.selected() is not None, timeout=WAIT_MS)
    chosen = page.selected()
    assert chosen is not None and chosen.source == HUGGING_FACE
    assert chosen.origin == "acme/Tiny-GGUF" and chosen.path.name == "tiny-Q8_0.gguf"
    assert chosen.path.read_bytes() == hub.repos["acme/Tiny-GGUF"].files["tiny-Q8_0.gguf"]
    assert not page.delete_button.isHidden()  # PromptSpool downloaded it: it may delete it
    page.delete_button.click()
    box = page.confirm_box
    assert box is not None and "tiny-Q8_0.gguf" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: "tiny-Q8_0" not in names(view), timeout=WAIT_MS)
    assert not chosen.path.exists() and not chosen.path.is_symlink()
    assert not any(cache.rglob("*.gguf"))


def test_in_the_app_use_sets_the_default_and_file_models_opens_the_view(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    queue: Queue,
    sources: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LibraryService, "default_places", [])  # this machine's tools kept out
    folder = queue.home / "models"
    folder.mkdir()
    path = shutil.copyfile(sources["charlie-chat"], folder / "charlie-chat.gguf")
    queue.configure(model_dirs=[str(folder)])
    controller = open_app(qtbot, qloop, queue)
    try:
        window = controller.window
        found = window.found
        qtbot.waitUntil(lambda: str(path) in found.use_buttons, timeout=WAIT_MS)
        assert not found.isHidden()
        found.use_buttons[str(path)].click()
        qtbot.waitUntil(lambda: Settings(home=queue.home).model == path, timeout=WAIT_MS)
        assert window.current_model() == str(path) and found.isHidden()
        window.actions_by_name["models"].trigger()
        view = controller.commands.models_view
        assert view is not None and view.isVisible() and view.tabs.currentWidget() is view.page
        qtbot.waitUntil(lambda: [m.path for m in view.page.model.rows] == [path], timeout=WAIT_MS)
    finally:
        close_app(qtbot, controller)


def test_a_gated_repo_says_hf_token_and_a_cancel_keeps_the_list_as_it_was(
    qtbot: QtBot, settings: Settings, hub: FakeHub
) -> None:
    view = ModelsView(library_of(settings), RealHub())
    qtbot.addWidget(view)
    listed(qtbot, view)
    section = view.download
    view.show_section("download")
    with qtbot.waitSignal(section.searched, timeout=WAIT_MS):
        section.search()
    with qtbot.waitSignal(section.files_listed, timeout=WAIT_MS):
        section.choose_repo("acme/Gated-GGUF")
    assert section.choose_file("gated-Q4_0.gguf")
    section.start()
    qtbot.waitUntil(lambda: not section.busy, timeout=WAIT_MS)
    assert "HF_TOKEN" in section.status.text() and "dc2626" in section.status.styleSheet()

    hub.rate = 20_000  # slow: the cancel lands mid-way
    with qtbot.waitSignal(section.files_listed, timeout=WAIT_MS):
        section.choose_repo("acme/Tiny-GGUF")
    assert section.choose_file("tiny-Q8_0.gguf")
    section.start()
    qtbot.waitUntil(lambda: " of " in section.progress_label.text(), timeout=WAIT_MS)
    section.cancel_button.click()
    qtbot.waitUntil(lambda: not section.busy, timeout=WAIT_MS)
    assert section.status.text().startswith("Cancelled tiny-Q8_0.gguf")
    assert view.tabs.currentWidget() is section and not view.library.marks.downloaded
