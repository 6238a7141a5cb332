"""Wires the app together: processes, event threads, the jobs model, window, tray and actions."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import redis
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.bridge import Batch, JobFollower, QueueReader
from desktop.clientpool import ClientPool, PoolClosed
from desktop.dropping import DropOutcome, plan_drop, submit_plan
from desktop.dropsummary import DropSummary, headline
from desktop.icons import retint
from desktop.jobactions import ActionResult, cancel_jobs, export_jobs, forget_jobs, retry_jobs
from desktop.jobrow import JobRow
from desktop.jobsmodel import JobsModel
from desktop.mainwindow import MainWindow
from desktop.modelpicker import ask_model_file
from desktop.notifier import Notifier
from desktop.nvml import gpu_memory
from desktop.settingsdialog import SettingsDialog
from desktop.supervisor import Supervisor, WorkerOutcome
from desktop.tray import Tray
from desktop.uistate import UiState
from worker.connection import QueueAddress, QueueUnavailable
from worker.events import Event
from worker.jobs import FINISHED_STATES, Job, JobState
from worker.modelinfo import read_model_info
from worker.server import ServerError
from worker.settings import Settings
from worker.spec import JobSpec

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 3000
TRAY_HINT = "tray_hint_shown"


class Controller(QObject):
    """The app's one coordinator. Queue calls run on the pool; the GUI thread only waits."""

    ready = Signal()  # the first snapshot of the jobs is in the table
    finished = Signal()  # shutdown complete
    submitted = Signal(list)  # ids of jobs queued from the editor
    drop_finished = Signal(object)  # DropOutcome
    action_finished = Signal(object)  # ActionResult
    message = Signal(str)  # what the status bar just said

    def __init__(self, settings: Settings, *, address: QueueAddress | None = None) -> None:
        """`address`: attach to that queue and start nothing; else supervise our own."""
        super().__init__()
        self.settings = settings
        self.ui = UiState(settings.paths.config)
        self.pool = ClientPool(settings, max_workers=3)
        self.jobs = JobsModel(self)
        self.window = MainWindow(self.jobs, settings, self.ui)
        self.notifier = Notifier(settings.notifications, self)
        self.tray = Tray(self.notifier, self)
        self.supervisor = None if address is not None else Supervisor(settings, self.pool, self)
        self.address = address
        self.reader: QueueReader | None = None
        self.follower: JobFollower | None = None
        self.summary: DropSummary | None = None
        self.settings_dialog: SettingsDialog | None = None
        self._retired: list[JobFollower] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reachable = False
        self._paused = False
        self._loaded = False
        self._select_pending: str | None = None
        self._status_busy = False
        self._recovering = False
        self._quitting = False
        self._done = asyncio.Event()
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self.jobs.tick)
        self._status = QTimer(self)
        self._status.setInterval(STATUS_INTERVAL_MS)
        self._status.timeout.connect(lambda: self._spawn(self.refresh_status(), "status"))
        self._counts = QTimer(self)
        self._counts.setSingleShot(True)
        self._counts.setInterval(150)
        self._counts.timeout.connect(self._update_counts)
        self._wire()
        self._restore_models()

    # --- wiring -----------------------------------------------------------------------

    def _wire(self) -> None:
        w = self.window
        w.current_job_changed.connect(self.follow)
        w.cancel_requested.connect(lambda ids: self._spawn(self.cancel(ids), "Cancel"))
        w.retry_requested.connect(lambda ids: self._spawn(self.retry(ids), "Retry"))
        w.forget_requested.connect(lambda ids: self._spawn(self.forget(ids), "Remove"))
        w.retry_failed_requested.connect(
            lambda: self._spawn(self.retry(self.jobs.ids([JobState.failed])), "Retry failed")
        )
        w.cancel_queued_requested.connect(
            lambda: self._spawn(self.cancel(self.jobs.ids([JobState.queued])), "Cancel queued")
        )
        w.clear_finished_requested.connect(self.confirm_clear_finished)
        w.pause_requested.connect(lambda paused: self._spawn(self.set_paused(paused), "Pause"))
        w.settings_requested.connect(self.open_settings)
        w.restart_worker_requested.connect(self.restart_worker)
        w.files_dropped.connect(lambda paths: self._spawn(self.drop(paths), "Drop"))
        w.export_requested.connect(self._ask_export)
        w.open_model_requested.connect(self.open_model)
        w.close_requested.connect(self.close_window)
        w.quit_requested.connect(self.request_quit)
        w.editor.submit_requested.connect(lambda spec: self._spawn(self.submit(spec), "Queue"))
        w.editor.picker.model_changed.connect(
            lambda path: self._spawn(self.show_model_info(path), "Model")
        )
        w.theme_changed.connect(lambda: retint(self.tray.menu))
        self.tray.show_requested.connect(w.bring_to_front)
        self.tray.pause_requested.connect(lambda p: self._spawn(self.set_paused(p), "Pause"))
        self.tray.quit_requested.connect(self.request_quit)
        self.tray.job_requested.connect(self.open_job)
        self.notifier.notified.connect(lambda title, text, _: self.show_message(f"{text}"))
        if self.supervisor is not None:
            self.supervisor.message.connect(self.show_message)
            self.supervisor.worker_exited.connect(self._on_worker_exited)

    def _restore_models(self) -> None:
        models = self.ui.recent_models()
        if self.settings.model and str(self.settings.model) not in models:
            models.append(str(self.settings.model))
        default = str(self.settings.model) if self.settings.model else None
        self.window.editor.picker.set_models(models, default)
        self.window.detail.show_empty(has_model=bool(models))

    # --- lifecycle --------------------------------------------------------------------

    async def run(self) -> int:
        """Start, then live until shutdown; the exit status."""
        await self.start()
        await self._done.wait()
        return 0

    async def start(self) -> None:
        self.window.show()
        self.tray.show()
        self.window.status.set_queue(False, "connecting to the queue…")
        try:
            if self.supervisor is not None:
                address = await self.supervisor.start()
            else:
                assert self.address is not None
                address = self.address
                self.pool.set_address(address)
        except (ServerError, QueueUnavailable, redis.RedisError, OSError) as exc:
            self.window.status.set_queue(False, str(exc))
            self.show_message(f"The queue could not start: {exc}")
            box = QMessageBox(
                QMessageBox.Icon.Critical,
                "PromptSpool",
                f"The queue could not start:\n{exc}",
                QMessageBox.StandardButton.Close,
                self.window,
            )
            box.finished.connect(box.deleteLater)
            box.open()  # not exec(): a nested loop inside a running task breaks qasync
            return
        self.address = address
        reader = QueueReader(address, self.settings)
        reader.connection_changed.connect(self._on_connection)
        reader.snapshot.connect(self._on_snapshot)
        reader.changed.connect(self._on_batch)
        self.reader = reader
        reader.start()
        self._tick.start()
        self._status.start()
        self._spawn(self.refresh_status(), "status")

    def request_quit(self) -> None:
        if not self._quitting:
            self._spawn(self.shutdown(), "Quit")

    async def shutdown(self) -> None:
        """Stop threads, then the processes we started, then close the window. Idempotent."""
        if self._quitting:
            await self._done.wait()
            return
        self._quitting = True
        try:
            self.window.save_state()
            for timer in (self._tick, self._status, self._counts):
                timer.stop()
            current = asyncio.current_task()
            others = [t for t in self._tasks if t is not current]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            threads = [t for t in (self.reader, self.follower, *self._retired) if t is not None]
            for thread in threads:
                thread.stop()
            for thread in threads:
                await self.pool.run(thread.wait)
            for thread in threads:
                thread.deleteLater()
            self.reader, self.follower, self._retired = None, None, []
            if self.supervisor is not None:
                await self.supervisor.shutdown()
        finally:
            self.pool.close()
            for dialog in (self.summary, self.settings_dialog):
                if dialog is not None:
                    dialog.close()
            self.tray.close()
            app = QApplication.instance()
            if app is not None:
                app.removeEventFilter(self.window.catcher)
            self.window.allow_close = True
            self.window.close()
            self._done.set()
            self.finished.emit()

    def close_window(self) -> None:
        """The window's close button: keep running in the tray, or quit."""
        if self.settings.keep_in_tray and self.tray.available:
            self.window.save_state()
            self.window.hide()
            if not self.ui.flag(TRAY_HINT):
                self.ui.set_flag(TRAY_HINT)
                self.tray.show_message(
                    "PromptSpool is still running",
                    "The queue keeps working in the tray. Quit from the tray menu or with Ctrl+Q.",
                    "",
                )
        else:
            self.request_quit()

    # --- queue events -----------------------------------------------------------------

    def _on_connection(self, reachable: bool, reason: str) -> None:
        self._reachable = reachable
        self.window.status.set_queue(reachable, reason, self._paused)
        self._schedule_counts()
        if reachable:
            self.show_message("Connected to the queue")
            return
        self.show_message(f"The queue is not reachable: {reason}")
        if self.supervisor is not None and not self._quitting and not self._recovering:
            self._spawn(self._recover_server(), "Server")

    async def _recover_server(self) -> None:
        """Start the bundled server again while the queue stays unreachable (with backoff)."""
        assert self.supervisor is not None
        self._recovering = True
        delay = 0.5
        try:
            while not self._reachable and not self._quitting:
                try:
                    await self.supervisor.ensure_server()
                    return
                except (ServerError, OSError) as exc:
                    self.show_message(f"The queue server did not start: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        finally:
            self._recovering = False

    def _on_snapshot(self, rows: list[JobRow], paused: bool) -> None:
        self.jobs.sync(rows)
        self._set_paused(paused)
        self._schedule_counts()
        if not self._loaded:
            self._loaded = True
            # Everything loaded so far lives as long as the app: keep it out of the
            # collector's full passes, which otherwise stall the loop for 50-120 ms.
            gc.freeze()
            selected = self.ui.text("selected")
            if selected and not self.window.table.current_job():
                self.window.select_job(selected)
            self.ready.emit()
        self._select_if_listed()

    def _on_batch(self, batch: Batch) -> None:
        self.jobs.apply_progress(batch.progress)
        if batch.rows:
            self.jobs.upsert(batch.rows)
        if batch.removed:
            self.jobs.remove(batch.removed)
        if batch.positions is not None:
            self.jobs.apply_positions(batch.positions)
        for event in batch.states:
            self._notify(event)
        if batch.paused is not None:
            self._set_paused(batch.paused)
        if batch.workers_changed or batch.states:
            self._spawn(self.refresh_status(), "status")  # e.g. a model just loaded
        if batch.rows or batch.removed:
            self._schedule_counts()
        self._select_if_listed()

    def _notify(self, event: Event) -> None:
        state = event.state
        if state is None or state not in FINISHED_STATES:
            return
        row = self.jobs.job(event.job_id)
        title = row.title if row is not None else event.job_id
        self.notifier.job_finished(event.job_id, title, state, event.data.get("error") or None)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.window.set_paused(paused)
        self.tray.set_paused(paused)
        self.window.status.set_queue(self._reachable, "", paused)
        self._schedule_counts()

    def _schedule_counts(self) -> None:
        if not self._counts.isActive():
            self._counts.start()

    def _update_counts(self) -> None:
        counts = self.jobs.counts()
        self.window.update_counts(counts)
        self.tray.update_state(counts, self._paused, self._reachable)

    def _on_worker_exited(self, outcome: WorkerOutcome) -> None:
        self._spawn(self.refresh_status(), "status")
        if not self._quitting:
            self.show_message(f"The {outcome}; restarting it")

    async def refresh_status(self) -> None:
        """Workers, model, GPU and VRAM for the status bar; starts a worker if none is alive."""
        if self._status_busy or self.pool.address is None:
            return
        self._status_busy = True
        try:
            workers = await self.pool.call(lambda client: client.workers())
            note = ""
            if self.supervisor is not None and not workers:
                note = "starting a worker…" if self.supervisor.worker_running else ""
                if self._reachable:
                    self.supervisor.ensure_worker()
            self.window.status.set_workers(workers, note)
            self.window.status.set_vram(await self.pool.run(gpu_memory))
        except (QueueUnavailable, redis.RedisError, OSError) as exc:
            log.debug("status: %s", exc)
        finally:
            self._status_busy = False

    # --- the selected job -------------------------------------------------------------

    def follow(self, job_id: str) -> None:
        """Show the job in the detail pane and stream its events (one follower at a time)."""
        if self.follower is not None and self.follower.job_id == job_id:
            return
        self._retire_follower()
        if not job_id or self.address is None or self._quitting:
            self.window.detail.show_empty(has_model=bool(self.window.editor.picker.models()))
            return
        follower = JobFollower(self.address, self.settings, job_id)
        follower.loaded.connect(self._on_follow_loaded)
        follower.events.connect(self._on_follow_events)
        follower.job_changed.connect(self._on_follow_changed)
        follower.gone.connect(self._on_follow_gone)
        follower.finished.connect(self._reap_followers)
        self.follower = follower
        follower.start()

    def _retire_follower(self) -> None:
        if self.follower is not None:
            self.follower.stop()
            self._retired.append(self.follower)
            self.follower = None

    def _reap_followers(self) -> None:
        if self._quitting:  # shutdown waits for every thread and deletes them itself
            return
        for thread in [t for t in self._retired if t.isFinished()]:
            self._retired.remove(thread)
            thread.deleteLater()

    def _current(self, job_id: str) -> bool:
        return self.follower is not None and self.follower.job_id == job_id

    def _on_follow_loaded(self, job: Job, texts: dict[int, str]) -> None:
        if self._current(job.id):
            self.window.detail.load(job, texts)

    def _on_follow_events(self, job_id: str, events: list[Event]) -> None:
        if self._current(job_id):
            self.window.detail.apply_events(events)

    def _on_follow_changed(self, job: Job) -> None:
        if self._current(job.id):
            self.window.detail.update_job(job)

    def _on_follow_gone(self, job_id: str) -> None:
        if self._current(job_id):
            self._retire_follower()
            self.window.detail.show_empty(has_model=True)

    def open_job(self, job_id: str) -> None:
        """Bring the window up with the job selected (a clicked notification)."""
        self.window.bring_to_front()
        if job_id:
            self.window.select_job(job_id)

    def _select_if_listed(self) -> None:
        pending = self._select_pending
        if pending and self.jobs.row_of(pending) is not None:
            self._select_pending = None
            self.window.select_job(pending)

    # --- actions ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run a coroutine on the loop, keeping a reference; report its failure."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._task_done, what))
        return task

    def _task_done(self, what: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or isinstance(exc, PoolClosed):
            return
        if isinstance(exc, QueueUnavailable | redis.RedisError):
            self.show_message(f"{what}: the queue is not reachable ({exc})")
            return
        log.error("%s failed", what, exc_info=exc)
        self.show_message(f"{what} failed: {exc}")

    def show_message(self, text: str) -> None:
        self.window.status.showMessage(text, 8000)
        self.message.emit(text)

    def _report(self, result: ActionResult) -> None:
        self.show_message(result.summary())
        self.action_finished.emit(result)

    async def submit(self, spec: JobSpec) -> list[str]:
        editor = self.window.editor
        try:
            ids = await self.pool.call(lambda client: client.submit([spec]))
        except ValueError as exc:
            editor.show_message(str(exc))
            raise
        editor.submitted()
        self.ui.add_recent_model(spec.model)
        self._select_pending = ids[0]
        self._select_if_listed()
        self.show_message(f"Queued “{spec.display_title}”")
        self.submitted.emit(ids)
        return ids

    async def cancel(self, ids: list[str]) -> ActionResult:
        live = [i for i in ids if (row := self.jobs.job(i)) is None or not row.state.finished]
        result = await self.pool.call(lambda client: cancel_jobs(client, live))
        self._report(result)
        return result

    async def retry(self, ids: list[str]) -> ActionResult:
        done = [i for i in ids if (row := self.jobs.job(i)) is None or row.state.finished]
        result = await self.pool.call(lambda client: retry_jobs(client, done))
        self._report(result)
        return result

    async def forget(self, ids: list[str]) -> ActionResult:
        done = [i for i in ids if (row := self.jobs.job(i)) is None or row.state.finished]
        result = await self.pool.call(lambda client: forget_jobs(client, done))
        self._report(result)
        return result

    def confirm_clear_finished(self) -> None:
        ids = self.jobs.ids(FINISHED_STATES)
        if not ids:
            self.show_message("No finished jobs to clear")
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Clear finished jobs",
            f"Remove {len(ids):,} finished jobs and their output from the queue?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self.window,
        )
        box.accepted.connect(lambda: self._spawn(self.forget(ids), "Clear finished"))
        box.finished.connect(box.deleteLater)
        box.open()

    async def set_paused(self, paused: bool) -> None:
        if paused:
            await self.pool.call(lambda client: client.pause())
            self.show_message("Queue paused: running jobs finish, no new ones start")
        else:
            count = await self.pool.call(lambda client: client.resume())
            self.show_message(f"Queue resumed ({count:,} queued)")
        self._set_paused(paused)

    async def drop(self, paths: list[Path]) -> DropOutcome:
        """Queue what the dropped files hold; one summary of what was queued and refused."""
        defaults = self.window.editor.defaults()
        plan = await self.pool.run(plan_drop, paths, defaults)
        outcome = await self.pool.call(lambda client: submit_plan(plan, client.submit))
        if self.summary is not None:
            self.summary.close()
            self.summary.deleteLater()
        self.summary = DropSummary(outcome, self.window)
        self.summary.show()
        self.show_message(headline(outcome))
        if outcome.job_ids:
            self._select_pending = outcome.job_ids[0]
            self._select_if_listed()
        self.drop_finished.emit(outcome)
        return outcome

    def _ask_export(self, ids: list[str], fmt: str) -> None:
        path = self.window.ask_export_path(len(ids), fmt)
        if path is not None:
            self._spawn(self.export(ids, fmt, path), "Export")

    async def export(self, ids: list[str], fmt: str, path: Path) -> int:
        count = await self.pool.call(lambda client: export_jobs(client, ids, fmt, path))
        self.show_message(f"Exported {count} job{'s' if count != 1 else ''} to {path}")
        return count

    # --- models and settings ----------------------------------------------------------

    def open_model(self) -> None:
        current = self.window.editor.picker.current_model() or ""
        path = ask_model_file(self.window, str(Path(current).parent) if current else "")
        if path:
            self.choose_model(path)

    def choose_model(self, path: str) -> None:
        """Use this model in the editor, remember it, and make it the default if none is set."""
        self.ui.add_recent_model(path)
        self.window.editor.picker.choose(path)
        if self.window.detail.job_id is None:
            self.window.detail.show_empty(has_model=True)
        if self.settings.model is None:
            self.settings.model = Path(path)
            self._spawn(self.pool.run(self.settings.save), "Save settings")

    async def show_model_info(self, path: str) -> None:
        picker = self.window.editor.picker
        if not path:
            picker.set_info("", "Choose a GGUF model to run the prompts with.")
            return
        try:
            info = await self.pool.run(read_model_info, path)
        except ValueError as exc:
            picker.set_info(path, str(exc), ok=False)
        else:
            picker.set_info(path, info.summary())

    def open_settings(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.close()
            self.settings_dialog.deleteLater()
        restart = self.supervisor is not None and self.supervisor.worker_running
        dialog = SettingsDialog(self.settings, restart, self.window)
        dialog.saved.connect(self.apply_settings)
        dialog.restart_worker_requested.connect(self.restart_worker)
        self.settings_dialog = dialog
        dialog.open()

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.pool.settings = settings
        self.notifier.enabled = settings.notifications
        self.window.editor.apply_defaults(settings)
        if self.supervisor is not None:
            self.supervisor.settings = settings
        if settings.model and str(settings.model) not in self.window.editor.picker.models():
            self.choose_model(str(settings.model))
        self.show_message("Settings saved")

    def restart_worker(self) -> None:
        if self.supervisor is None or not self.supervisor.worker_running:
            self.show_message("This window did not start the worker; restart it where it runs")
            return
        self.supervisor.restart_worker()
        self.show_message("Restarting the worker; a running job goes back to the queue")
