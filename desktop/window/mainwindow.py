"""The main window: toolbar, filter, jobs table, editor, detail pane, status bar; no queue logic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal, SignalInstance
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.common.filenames import export_file_name
from desktop.common.icons import app_icon, retint, set_icon
from desktop.jobs.batches import BatchSummary
from desktop.jobs.filterbar import FilterBar
from desktop.jobs.filtering import JobsFilter
from desktop.jobs.model import JobsModel
from desktop.jobs.table import JobsTable
from desktop.services.drops import DropOutcome
from desktop.services.httpapi import ApiStatus
from desktop.services.library import LibraryService
from desktop.services.uistate import UiState, default_export_dir
from desktop.window.detail import DetailPane
from desktop.window.dropoverlay import DropCatcher, DropOverlay
from desktop.window.dropsummary import DropSummary
from desktop.window.editor import EditorPanel
from desktop.window.firstrun import FoundModels
from desktop.window.menus import build_menus, build_toolbar, make_actions
from desktop.window.statusbar import QueueStatusBar
from worker.engine.hardware import GpuMemory
from worker.jobs.job import FINISHED_STATES, Job, JobState
from worker.jobs.promptfiles import SUPPORTED_SUFFIXES
from worker.queue.events import Event
from worker.settings import Settings

PROMPT_FILTER = "Prompt files (" + " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES) + ")"


class MainWindow(QMainWindow):
    """Widgets and their intents; the controller does the work."""

    cancel_requested = Signal(list)
    retry_requested = Signal(list)
    forget_requested = Signal(list)
    retry_failed_requested = Signal()
    cancel_queued_requested = Signal()
    clear_finished_requested = Signal()
    pause_requested = Signal(bool)
    settings_requested = Signal()
    restart_worker_requested = Signal()
    files_dropped = Signal(list)  # list[Path]
    files_added = Signal(list)  # list[Path], chosen in File > Add files
    export_requested = Signal(list, str)  # job ids, "md" | "json"
    current_job_changed = Signal(str)
    open_model_requested = Signal()
    close_requested = Signal()
    quit_requested = Signal()
    theme_changed = Signal()
    about_requested = Signal()  # Help > About
    submit_requested = Signal(object)  # JobSpec, from the editor
    follow_up_requested = Signal(str)  # a finished job to continue in the editor
    model_changed = Signal(str)  # the editor's model (path; '' for none)
    models_requested = Signal(str)  # File > Models…: "library" or "download" (its section)
    use_model_requested = Signal(str)  # a model found on disk, chosen on the welcome screen

    def __init__(
        self,
        jobs: JobsModel,
        settings: Settings,
        ui: UiState,
        library: LibraryService | None = None,
    ) -> None:
        """`library`: the models on disk (default: the settings' and every tool's)."""
        super().__init__()
        self.library = library or LibraryService(settings, parent=self)
        self.ui = ui
        self.jobs = jobs
        self.allow_close = False
        self.paused = False
        self.drop_summary: DropSummary | None = None
        self.setWindowTitle("PromptSpool")
        self.setWindowIcon(app_icon())
        self.setObjectName("main-window")
        self.proxy = JobsFilter(jobs, self)
        self.table = JobsTable(jobs, self.proxy)
        self.table.current_job_changed.connect(self.current_job_changed)
        self.table.current_job_changed.connect(lambda _: self.update_actions())
        self.filter = FilterBar()
        self.filter.states_changed.connect(self.proxy.set_states)
        self.filter.batch_changed.connect(self.proxy.set_batch)
        self.filter.search_changed.connect(self.proxy.set_search)
        self._build_editor(settings)
        self.detail = DetailPane()
        self.detail.cancel_clicked.connect(lambda: self._on_current(self.cancel_requested))
        self.detail.retry_clicked.connect(lambda: self._on_current(self.retry_requested))
        self.detail.export_clicked.connect(self._export_current)
        self.detail.open_model_clicked.connect(self.open_model_requested)
        self.detail.set_raw(ui.flag("output_raw"))
        self.detail.raw_toggled.connect(lambda raw: ui.set_flag("output_raw", raw))
        jobs.dataChanged.connect(lambda *_: self._sync_detail())
        self.detail.follow_up_clicked.connect(self._follow_up_current)
        self.detail.parent_clicked.connect(self._select_parent)
        self.detail.parent_title = lambda job_id: (
            row.title if (row := self.jobs.job(job_id)) is not None else None
        )
        self._build_found_models()
        self.status = QueueStatusBar()
        self.setStatusBar(self.status)
        self._build_actions()
        build_menus(self.menuBar(), self.actions_by_name)
        self.toolbar = build_toolbar(self.actions_by_name)
        self.addToolBar(self.toolbar)
        self._build_layout()
        self.overlay = DropOverlay(self)
        self.catcher = DropCatcher(self, self.overlay)
        self.catcher.dropped.connect(self.files_dropped)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.catcher)
        self.setAcceptDrops(True)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.update_actions())
        self.resize(1280, 800)
        self.restore_state()
        self.update_actions()

    # --- building ---------------------------------------------------------------------

    def _build_actions(self) -> None:
        a = self.actions_by_name = make_actions(self)
        a["cancel"].setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.table.addAction(a["cancel"])  # Delete only cancels while the table has focus
        a["new"].triggered.connect(self._focus_editor)
        a["add_files"].triggered.connect(self._add_files)
        a["open_model"].triggered.connect(self.open_model_requested)
        a["models"].triggered.connect(lambda: self.models_requested.emit("library"))
        a["export"].triggered.connect(lambda: self._export(self.table.selected_ids(), "md"))
        a["settings"].triggered.connect(self.settings_requested)
        a["about"].triggered.connect(self.about_requested)
        a["quit"].triggered.connect(self.quit_requested)
        a["cancel"].triggered.connect(lambda: self.cancel_requested.emit(self.table.selected_ids()))
        a["retry"].triggered.connect(lambda: self.retry_requested.emit(self.table.selected_ids()))
        a["follow_up"].triggered.connect(self._follow_up_current)
        a["forget"].triggered.connect(lambda: self.forget_requested.emit(self.table.selected_ids()))
        a["copy"].triggered.connect(self.detail.copy_output)
        a["retry_failed"].triggered.connect(self.retry_failed_requested)
        a["cancel_queued"].triggered.connect(self.cancel_queued_requested)
        a["clear_finished"].triggered.connect(self.clear_finished_requested)
        a["pause"].triggered.connect(lambda: self.pause_requested.emit(not self.paused))
        a["restart_worker"].triggered.connect(self.restart_worker_requested)
        a["search"].triggered.connect(self._focus_search)
        for name in ("retry", "copy", "new", "search"):
            self.addAction(a[name])
        for name in ("retry", "copy", "export", "forget"):
            self.table.addAction(a[name])

    def _build_layout(self) -> None:
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.left_split = QSplitter(Qt.Orientation.Vertical)
        self.left_split.addWidget(self.table)
        self.left_split.addWidget(self.editor)
        self.left_split.setStretchFactor(0, 3)
        self.left_split.setStretchFactor(1, 2)
        self.left_split.setCollapsible(0, False)
        column.addWidget(self.filter)
        column.addWidget(self.left_split, 1)
        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.addWidget(left)
        self.main_split.addWidget(self.detail)
        self.main_split.setStretchFactor(0, 3)
        self.main_split.setStretchFactor(1, 2)
        self.main_split.setCollapsible(0, False)
        self.main_split.setSizes([740, 540])
        self.left_split.setSizes([460, 260])
        self.setCentralWidget(self.main_split)

    def _build_editor(self, settings: Settings) -> None:
        self.editor = EditorPanel(settings)
        self.editor.submit_requested.connect(self.submit_requested)
        self.editor.picker.model_changed.connect(self.model_changed)
        self.editor.picker.browse_requested.connect(self.open_model_requested)
        self.editor.picker.set_library(self.library)

    def _build_found_models(self) -> None:
        """The models found on disk, under the welcome text (shown only with it)."""
        self.found = FoundModels(self.library)
        self.found.use_requested.connect(self.use_model_requested)
        self.found.download_requested.connect(lambda: self.models_requested.emit("download"))
        self.found.models_requested.connect(lambda: self.models_requested.emit("library"))
        column = self.detail.empty.layout()
        if isinstance(column, QVBoxLayout):
            row = QHBoxLayout()
            row.addStretch(1)
            row.addWidget(self.found, 10)
            row.addStretch(1)
            column.insertLayout(column.count() - 1, row)
        self.found.hide()

    # --- state ------------------------------------------------------------------------

    def restore_state(self) -> None:
        for key, restore in (
            ("geometry", self.restoreGeometry),
            ("main_split", self.main_split.restoreState),
            ("left_split", self.left_split.restoreState),
        ):
            value = self.ui.geometry(key)
            if value is not None:
                restore(value)

    def save_state(self) -> None:
        self.ui.set_geometry("geometry", self.saveGeometry())
        self.ui.set_geometry("main_split", self.main_split.saveState())
        self.ui.set_geometry("left_split", self.left_split.saveState())
        self.ui.set_text("selected", self.table.current_job() or "")
        self.ui.sync()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        action = self.actions_by_name["pause"]
        action.setText("&Resume the queue" if paused else "&Pause the queue")
        action.setIconText("Resume" if paused else "Pause")
        set_icon(action, "resume" if paused else "pause")

    def update_counts(self, counts: Counter[JobState]) -> None:
        """Filter counts and the bulk actions that have something to act on."""
        self.filter.set_counts(counts)
        self.status.set_loading(self.jobs.loading_models())
        a = self.actions_by_name
        a["retry_failed"].setEnabled(counts[JobState.failed] > 0)
        a["cancel_queued"].setEnabled(counts[JobState.queued] > 0)
        a["clear_finished"].setEnabled(any(counts[s] for s in FINISHED_STATES))
        self.update_actions()

    def _sync_detail(self) -> None:
        """The detail pane says what the table says: the job's place in the queue."""
        row = self.jobs.job(self.detail.job_id or "")
        if row is not None:
            self.detail.set_queue_position(row.queue_position)

    def update_actions(self) -> None:
        """Enable what applies to the selected jobs."""
        rows = [row for i in self.table.selected_ids() if (row := self.jobs.job(i)) is not None]
        a = self.actions_by_name
        a["cancel"].setEnabled(any(not r.state.finished and not r.cancel_requested for r in rows))
        a["retry"].setEnabled(any(r.state.finished for r in rows))
        a["forget"].setEnabled(any(r.state.finished for r in rows))
        a["export"].setEnabled(bool(rows))
        current = self.jobs.job(self.table.current_job() or "")
        a["follow_up"].setEnabled(current is not None and current.state is JobState.succeeded)
        a["copy"].setEnabled(self.table.current_job() is not None)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            retint(self)  # monochrome icons follow a light/dark theme switch
            self.theme_changed.emit()

    def select_job(self, job_id: str) -> bool:
        if self.table.select_job(job_id):
            return True
        if self.jobs.row_of(job_id) is not None:  # filtered out: show everything
            self.filter.choose("All")
            self.filter.choose_batch(None)
            self.filter.search.clear()
            return self.table.select_job(job_id)
        return False

    def show_batch(self, batch_id: str) -> bool:
        """List only this batch's jobs (all states); False when none of them is listed."""
        if not self.filter.choose_batch(batch_id):
            return False
        self.filter.choose("All")
        self.filter.search.clear()
        return True

    def bring_to_front(self) -> None:
        self.show()
        if self.isMinimized():
            self.showNormal()
        self.raise_()
        self.activateWindow()

    # --- what the controller shows -----------------------------------------------------

    def set_models(self, models: list[str], default: str | None) -> None:
        self.editor.picker.set_models(models, default)
        if self.detail.job_id is None:
            self.show_no_job()

    def models(self) -> list[str]:
        return self.editor.picker.models()

    def current_model(self) -> str | None:
        return self.editor.picker.current_model()

    def choose_model(self, path: str) -> None:
        """Queue new jobs with this model."""
        self.editor.picker.choose(path)
        if self.detail.job_id is None:
            self.show_no_job()

    def set_model_info(
        self, path: str, text: str, ok: bool = True, chat_template: bool | None = None
    ) -> None:
        self.editor.picker.set_info(path, text, ok, chat_template)

    def start_follow_up(self, job: Job) -> None:
        """The editor continues this finished job's conversation."""
        self.editor.start_follow_up(job)

    def job_defaults(self) -> dict[str, Any]:
        """What new jobs get besides their prompt, as the editor has it (dropped files too)."""
        return self.editor.defaults()

    def apply_settings(self, settings: Settings) -> None:
        self.editor.apply_defaults(settings)
        self.library.set_settings(settings)

    def prompt_queued(self) -> None:
        self.editor.submitted()

    def prompt_refused(self, reason: str) -> None:
        self.editor.show_message(reason)

    def show_no_job(self) -> None:
        """The hint, or the welcome (with the models found on disk) while none is chosen."""
        has_model = bool(self.models())
        self.detail.show_empty(has_model=has_model)
        self.found.setVisible(not has_model)
        if not has_model:
            self.library.ensure()

    def show_job(self, job: Job, texts: dict[int, str]) -> None:
        self.detail.load(job, texts)
        self._sync_detail()

    def show_job_events(self, events: list[Event]) -> None:
        self.detail.apply_events(events)

    def show_job_changed(self, job: Job) -> None:
        self.detail.update_job(job)
        self._sync_detail()

    def set_queue_state(self, reachable: bool, reason: str = "", paused: bool = False) -> None:
        self.status.set_queue(reachable, reason, paused)

    def update_batches(self, batches: list[BatchSummary]) -> None:
        """The batches with jobs in the table: the batch filter and the batch column."""
        self.filter.set_batches(batches)
        self.table.show_batch_column(bool(batches))

    def set_api_status(self, status: ApiStatus) -> None:
        self.status.set_api(status)

    def set_workers(self, workers: list[dict[str, Any]], note: str = "") -> None:
        self.status.set_workers(workers, note)

    def set_vram(self, gpus: list[GpuMemory] | None) -> None:
        self.status.set_vram(gpus)

    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.status.showMessage(text, timeout_ms)

    def current_job(self) -> str | None:
        """The job the table's cursor is on."""
        return self.table.current_job()

    def tell_error(self, text: str) -> None:
        """An error that needs the user's attention, in a window-modal box."""
        box = QMessageBox(
            QMessageBox.Icon.Critical, "PromptSpool", text, QMessageBox.StandardButton.Close, self
        )
        box.finished.connect(box.deleteLater)
        box.open()  # not exec(): a nested loop inside a running task breaks qasync

    def confirm(self, title: str, question: str, on_yes: Callable[[], object]) -> None:
        """Ask a yes/cancel question; `on_yes` runs if the answer is yes."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.accepted.connect(on_yes)
        box.finished.connect(box.deleteLater)
        box.open()

    def show_drop_summary(self, outcome: DropOutcome) -> None:
        """What a drop (or Add files) queued and refused, in one box (replacing the last)."""
        if self.drop_summary is not None:
            self.drop_summary.close()
            self.drop_summary.deleteLater()
        self.drop_summary = DropSummary(outcome, self)
        self.drop_summary.show()

    def close_for_good(self) -> None:
        """Close the window at quit (the close button otherwise only asks to close)."""
        if self.drop_summary is not None:
            self.drop_summary.close()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.catcher)
        self.allow_close = True
        self.close()

    # --- intents ----------------------------------------------------------------------

    def _on_current(self, signal: SignalInstance) -> None:
        job_id = self.detail.job_id
        if job_id:
            signal.emit([job_id])

    def _follow_up_current(self) -> None:
        job_id = self.detail.job_id or self.table.current_job()
        if job_id:
            self.follow_up_requested.emit(job_id)

    def _select_parent(self, job_id: str) -> None:
        if not self.select_job(job_id):
            self.show_message("The job this one follows up is no longer listed")

    def _focus_editor(self) -> None:
        self.editor.prompt.setFocus()

    def _focus_search(self) -> None:
        self.filter.search.setFocus()
        self.filter.search.selectAll()

    def _export_current(self, fmt: str) -> None:
        if self.detail.job_id:
            self._export([self.detail.job_id], fmt)

    def _export(self, ids: list[str], fmt: str) -> None:
        if ids:
            self.export_requested.emit(ids, fmt)

    def ask_export_path(self, ids: list[str], fmt: str) -> Path | None:
        """Where to export: one job is offered under its title, in the last export folder."""
        suffix = {"md": "Markdown (*.md)", "json": "JSON (*.json)"}[fmt]
        row = self.jobs.job(ids[0]) if len(ids) == 1 else None
        name = export_file_name(row.title if row is not None else None, len(ids), fmt)
        start = self.ui.export_dir() or default_export_dir()
        path, _ = QFileDialog.getSaveFileName(self, "Export jobs", str(start / name), suffix)
        if not path:
            return None
        self.ui.set_export_dir(Path(path).parent)
        return Path(path)

    def _add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add prompt files", "", PROMPT_FILTER)
        if paths:
            self.files_added.emit([Path(p) for p in paths])

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.allow_close:
            event.accept()
            return
        event.ignore()
        self.close_requested.emit()
