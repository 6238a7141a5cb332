"""The user's commands, carried out: queue, cancel, retry, clear, pause, drop, export, settings.

Queue calls go through the actions service; the answers go to the window and the status bar.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis
from PySide6.QtCore import QObject, Signal

from desktop.jobs.model import JobsModel
from desktop.services.actions import ActionResult, JobActions
from desktop.services.clientpool import ClientPool
from desktop.services.drops import DropOutcome
from desktop.services.hubclient import Hub, RealHub
from desktop.services.supervisor import Supervisor
from desktop.services.tasks import TaskGroup
from desktop.services.uistate import UiState
from desktop.window.about import AboutDialog, server_version
from desktop.window.dropsummary import headline
from desktop.window.mainwindow import MainWindow
from desktop.window.modelpicker import ask_model_file
from desktop.window.modelsview import ModelsView
from desktop.window.settingsdialog import SettingsDialog
from worker.jobs.followup import can_follow_up
from worker.jobs.job import FINISHED_STATES, JobState
from worker.jobs.spec import JobSpec
from worker.modelfile.info import read_model_info
from worker.queue.connection import QueueUnavailable
from worker.queue.ledger import UnknownJobError
from worker.settings import DEFAULT_HTTP_PORT, Settings

API_PORT = "api_port"  # the HTTP API's last port, offered again when it is turned back on


class Commands(QObject):
    """Carries out what the window, the tray and the keyboard ask for."""

    submitted = Signal(list)  # ids of jobs queued from the editor
    drop_finished = Signal(object)  # DropOutcome
    action_finished = Signal(object)  # ActionResult
    select_requested = Signal(str)  # a job just queued: select it once it is in the table
    paused_changed = Signal(bool)
    settings_changed = Signal(object)  # Settings, saved in the settings dialog

    def __init__(
        self,
        settings: Settings,
        window: MainWindow,
        jobs: JobsModel,
        ui: UiState,
        pool: ClientPool,
        tasks: TaskGroup,
        supervisor: Supervisor | None,
        report: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.window = window
        self.jobs = jobs
        self.ui = ui
        self.pool = pool
        self.actions = JobActions(pool)
        self.tasks = tasks
        self.supervisor = supervisor
        self.report = report
        self.settings_dialog: SettingsDialog | None = None
        self.about_dialog: AboutDialog | None = None
        self.models_view: ModelsView | None = None
        self.hub: Hub = RealHub()  # the Models view's Download section asks it

    def wire(self) -> None:
        """Connect the window's intents to the commands."""
        w, spawn, jobs = self.window, self.tasks.spawn, self.jobs
        w.cancel_requested.connect(lambda ids: spawn(self.cancel(ids), "Cancel"))
        w.retry_requested.connect(lambda ids: spawn(self.retry(ids), "Retry"))
        w.forget_requested.connect(lambda ids: spawn(self.forget(ids), "Remove"))
        w.retry_failed_requested.connect(
            lambda: spawn(self.retry(jobs.ids([JobState.failed])), "Retry failed")
        )
        w.cancel_queued_requested.connect(
            lambda: spawn(self.cancel(jobs.ids([JobState.queued])), "Cancel queued")
        )
        w.clear_finished_requested.connect(self.confirm_clear_finished)
        w.pause_requested.connect(lambda paused: spawn(self.set_paused(paused), "Pause"))
        w.settings_requested.connect(self.open_settings)
        w.about_requested.connect(self.open_about)
        w.restart_worker_requested.connect(self.restart_worker)
        w.files_dropped.connect(lambda paths: spawn(self.drop(paths), "Drop"))
        w.files_added.connect(lambda paths: spawn(self.drop(paths, added=True), "Add files"))
        w.export_requested.connect(self.ask_export)
        w.open_model_requested.connect(self.open_model)
        w.models_requested.connect(self.open_models)
        w.use_model_requested.connect(self.choose_model)
        w.submit_requested.connect(lambda spec: spawn(self.submit(spec), "Queue"))
        w.follow_up_requested.connect(lambda job_id: spawn(self.follow_up(job_id), "Follow up"))
        w.model_changed.connect(lambda path: spawn(self.show_model_info(path), "Model"))

    def close(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.close()
        if self.models_view is not None:
            self.models_view.download.cancel()
            self.models_view.close()

    # --- jobs -------------------------------------------------------------------------

    def _done(self, result: ActionResult) -> ActionResult:
        self.report(result.summary())
        self.action_finished.emit(result)
        return result

    def _unfinished(self, ids: list[str]) -> list[str]:
        return [i for i in ids if (row := self.jobs.job(i)) is None or not row.state.finished]

    def _finished(self, ids: list[str]) -> list[str]:
        return [i for i in ids if (row := self.jobs.job(i)) is None or row.state.finished]

    async def submit(self, spec: JobSpec) -> list[str]:
        """Queue the editor's job; a refusal (e.g. a model file gone) is told in the editor."""
        try:
            ids = await self.actions.submit([spec])
        except ValueError as exc:
            self.window.prompt_refused(str(exc))
            self.report(f"Not queued: {exc}")
            return []
        self.window.prompt_queued()
        self.ui.add_recent_model(spec.model)
        self.select_requested.emit(ids[0])
        self.report(f"Queued “{spec.display_title}”")
        self.submitted.emit(ids)
        return ids

    async def follow_up(self, job_id: str) -> bool:
        """Put the editor in follow-up mode on the job, read with its whole output."""
        try:
            job = await self.pool.call(lambda client: client.get(job_id, with_output=True))
        except UnknownJobError:
            self.report("That job is no longer in the queue: it cannot be followed up")
            return False
        if not can_follow_up(job):
            self.report(f"Only a job that succeeded can be followed up (“{job.title}” has not)")
            return False
        self.window.start_follow_up(job)
        return True

    async def cancel(self, ids: list[str]) -> ActionResult:
        return self._done(await self.actions.cancel(self._unfinished(ids)))

    async def retry(self, ids: list[str]) -> ActionResult:
        return self._done(await self.actions.retry(self._finished(ids)))

    async def forget(self, ids: list[str]) -> ActionResult:
        return self._done(await self.actions.forget(self._finished(ids)))

    def confirm_clear_finished(self) -> None:
        ids = self.jobs.ids(FINISHED_STATES)
        if not ids:
            self.report("No finished jobs to clear")
            return
        self.window.confirm(
            "Clear finished jobs",
            f"Remove {len(ids):,} finished jobs and their output from the queue?",
            lambda: self.tasks.spawn(self.forget(ids), "Clear finished"),
        )

    async def set_paused(self, paused: bool) -> None:
        if paused:
            await self.actions.pause()
            self.report("Queue paused: running jobs finish, no new ones start")
        else:
            count = await self.actions.resume()
            self.report(f"Queue resumed ({count:,} queued)")
        self.paused_changed.emit(paused)

    async def drop(self, paths: list[Path], *, added: bool = False) -> DropOutcome:
        """Queue what the dropped (`added`: chosen in Add files) files hold; one summary of
        what was queued and refused."""
        outcome = await self.actions.drop(paths, self.window.job_defaults())
        outcome.added = added
        self.window.show_drop_summary(outcome)
        self.report(headline(outcome))
        if outcome.job_ids:
            self.select_requested.emit(outcome.job_ids[0])
        self.drop_finished.emit(outcome)
        return outcome

    def ask_export(self, ids: list[str], fmt: str) -> None:
        path = self.window.ask_export_path(ids, fmt)
        if path is not None:
            self.tasks.spawn(self.export(ids, fmt, path), "Export")

    async def export(self, ids: list[str], fmt: str, path: Path) -> int:
        count = await self.actions.export(ids, fmt, path)
        self.report(f"Exported {count} job{'s' if count != 1 else ''} to {path}")
        return count

    # --- models, settings, the worker -------------------------------------------------

    def open_model(self) -> None:
        current = self.window.current_model() or ""
        path = ask_model_file(self.window, str(Path(current).parent) if current else "")
        if path:
            self.choose_model(path)

    def choose_model(self, path: str) -> None:
        """Use this model in the editor, remember it, and make it the default if none is set."""
        self.ui.add_recent_model(path)
        self.window.choose_model(path)
        if self.settings.model is None:
            self.settings.model = Path(path)
            self.tasks.spawn(self.pool.run(self.settings.save), "Save settings")

    def open_models(self, section: str = "library") -> ModelsView:
        """File > Models…: one window for the session (a download goes on while it is
        closed); `section`: "library" or "download"."""
        view = self.models_view
        if view is None:
            view = ModelsView(self.window.library, self.hub, self.window)
            view.default_changed.connect(self.apply_settings)
            self.models_view = view
        view.show_section(section)
        view.show()
        view.raise_()
        view.activateWindow()
        return view

    async def show_model_info(self, path: str) -> None:
        if not path:
            self.window.set_model_info("", "Choose a GGUF model to run the prompts with.")
            return
        if self.settings.remote_target(path) is not None:
            return  # a remote endpoint's model: the picker says where it runs
        try:
            info = await self.pool.run(read_model_info, path)
        except ValueError as exc:
            self.window.set_model_info(path, str(exc), ok=False)
        else:
            self.window.set_model_info(path, info.summary(), chat_template=info.chat_template)

    def open_settings(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.close()
            self.settings_dialog.deleteLater()
        restart = self.supervisor is not None and self.supervisor.worker_running
        api = self.supervisor.api_status if self.supervisor is not None else None
        port = self.ui.text(API_PORT)
        last = int(port) if port.isdigit() and 0 < int(port) < 65_536 else DEFAULT_HTTP_PORT
        dialog = SettingsDialog(self.settings, restart, self.window, api_status=api, api_port=last)
        dialog.saved.connect(self.apply_settings)
        dialog.restart_worker_requested.connect(self.restart_worker)
        self.settings_dialog = dialog
        dialog.open()

    def apply_settings(self, settings: Settings) -> None:
        if self.settings.http_port:
            self.ui.set_text(API_PORT, str(self.settings.http_port))
        changed = settings.model != self.settings.model
        self.settings = settings
        self.window.apply_settings(settings)
        self.settings_changed.emit(settings)
        if settings.model and (changed or str(settings.model) not in self.window.models()):
            self.choose_model(str(settings.model))  # the picker follows the default model
        self.report("Settings saved")

    def open_about(self) -> AboutDialog:
        """Help > About; the queue server's version is filled in once asked."""
        if self.about_dialog is not None:
            self.about_dialog.close()
        dialog = AboutDialog(self.settings.paths, parent=self.window)
        dialog.finished.connect(lambda _: self._about_closed(dialog))
        self.about_dialog = dialog
        if self.pool.address is not None:
            self.tasks.spawn(self._about_server(dialog), "About")
        dialog.open()
        return dialog

    async def _about_server(self, dialog: AboutDialog) -> None:
        try:
            info = await self.pool.call(lambda client: dict(client.redis.info("server")))
        except (QueueUnavailable, redis.RedisError, OSError):
            return  # it stays "unknown"
        if dialog is self.about_dialog:
            dialog.set_server(server_version(info))

    def _about_closed(self, dialog: AboutDialog) -> None:
        if dialog is self.about_dialog:
            self.about_dialog = None
        dialog.deleteLater()

    def restart_worker(self) -> None:
        if self.supervisor is None or not self.supervisor.worker_running:
            self.report("This window did not start the worker; restart it where it runs")
            return
        self.supervisor.restart_worker()
        self.report("Restarting the worker; a running job goes back to the queue")
