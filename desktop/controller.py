"""Wires the app together: the queue's processes and readers, the jobs model, window and tray."""

from __future__ import annotations

import asyncio
import gc
import logging

import redis
from PySide6.QtCore import QObject, QTimer, Signal

from desktop.commands import Commands
from desktop.common.icons import retint
from desktop.jobs.batches import summarize
from desktop.jobs.model import JobsModel
from desktop.jobs.row import JobRow
from desktop.services.clientpool import ClientPool
from desktop.services.following import JobFollowing
from desktop.services.httpapi import ApiState, ApiStatus
from desktop.services.readers import Changes, QueueReader
from desktop.services.supervisor import Supervisor
from desktop.services.tasks import TaskGroup
from desktop.services.uistate import UiState
from desktop.window.mainwindow import MainWindow
from desktop.window.notifier import Notifier
from desktop.window.quitting import QuitFlow
from desktop.window.tray import Tray
from worker.engine.hardware import gpu_memory
from worker.hosting.children import ChildOutcome
from worker.hosting.server import ServerError
from worker.jobs.job import FINISHED_STATES
from worker.queue.batches.keeper import BatchKeeper
from worker.queue.batches.record import ENDED
from worker.queue.batches.store import BatchStore
from worker.queue.connection import QueueAddress, QueueUnavailable
from worker.queue.events import Event
from worker.settings import Settings

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 3000
TRAY_HINT = "tray_hint_shown"


class Controller(QObject):
    """The app's one coordinator. Queue calls run on the pool; the GUI thread only waits."""

    ready = Signal()  # the first snapshot of the jobs is in the table
    finished = Signal()  # shutdown complete
    message = Signal(str)  # what the status bar just said

    def __init__(self, settings: Settings, *, address: QueueAddress | None = None) -> None:
        """`address`: attach to that queue and start nothing; else supervise our own."""
        super().__init__()
        self.settings = settings
        self.ui = UiState(settings.paths.config)
        self.pool = ClientPool(settings, max_workers=3)
        self.tasks = TaskGroup(self.show_message)
        self.jobs = JobsModel(self)
        self.window = MainWindow(self.jobs, settings, self.ui)
        self.notifier = Notifier(settings.notifications, self)
        self.tray = Tray(self.notifier, self, sound=settings.notify_sound)
        self.quitting = QuitFlow(self.window, self)
        self.following = JobFollowing(settings, self)
        self.supervisor = (
            None
            if address is not None
            else Supervisor(settings, self.pool, self, watch_interval_s=STATUS_INTERVAL_MS / 1000)
        )
        self.commands = Commands(
            settings, self.window, self.jobs, self.ui, self.pool, self.tasks, self.supervisor,
            self.show_message, self,
        )  # fmt: skip
        self.address = address
        self.reader: QueueReader | None = None
        self.keeper: BatchKeeper | None = None
        self._reachable = False
        self._paused = False
        self._loaded = False
        self._select_pending: str | None = None
        self._batch_ends: dict[str, str] = {}  # batch id -> how it ended, as announced
        self._status_busy = False
        self._quitting = False
        self._done = asyncio.Event()
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self.jobs.tick)
        self._status = QTimer(self)
        self._status.setInterval(STATUS_INTERVAL_MS)
        self._status.timeout.connect(lambda: self.tasks.spawn(self.refresh_status(), "status"))
        self._counts = QTimer(self)
        self._counts.setSingleShot(True)
        self._counts.setInterval(150)
        self._counts.timeout.connect(self._update_counts)
        self._wire()
        self._restore_models()

    # --- wiring -----------------------------------------------------------------------

    def _wire(self) -> None:
        w, c = self.window, self.commands
        c.wire()
        c.select_requested.connect(self._select_when_listed)
        c.paused_changed.connect(self._set_paused)
        c.settings_changed.connect(self._apply_settings)
        w.current_job_changed.connect(self.follow)
        w.close_requested.connect(self.close_window)
        w.quit_requested.connect(self.ask_quit)
        self.quitting.quit_now.connect(self.request_quit)
        w.theme_changed.connect(lambda: retint(self.tray.menu))
        self.tray.show_requested.connect(w.bring_to_front)
        self.tray.pause_requested.connect(lambda p: self.tasks.spawn(c.set_paused(p), "Pause"))
        self.tray.quit_requested.connect(self.ask_quit)
        self.tray.job_requested.connect(self.open_job)
        self.tray.batch_requested.connect(self.open_batch)
        self.notifier.notified.connect(lambda title, text, _: self.show_message(f"{text}"))
        self.notifier.batch_notified.connect(
            lambda title, text, _: self.show_message(f"{title}: {text}")
        )
        self.following.loaded.connect(w.show_job)
        self.following.events.connect(w.show_job_events)
        self.following.changed.connect(w.show_job_changed)
        self.following.gone.connect(w.show_no_job)
        if self.supervisor is not None:
            self.supervisor.message.connect(self.show_message)
            self.supervisor.worker_exited.connect(self._on_worker_exited)
            self.supervisor.api_changed.connect(w.set_api_status)
            self.supervisor.api_changed.connect(self._keep_batches)

    def _restore_models(self) -> None:
        models = self.ui.recent_models()
        if self.settings.model and str(self.settings.model) not in models:
            models.append(str(self.settings.model))
        default = str(self.settings.model) if self.settings.model else None
        self.window.set_models(models, default)

    # --- lifecycle --------------------------------------------------------------------

    async def run(self) -> int:
        """Start, then live until shutdown; the exit status."""
        await self.start()
        await self._done.wait()
        return 0

    async def start(self) -> None:
        self.window.show()
        self.tray.show()
        self.window.set_queue_state(False, "connecting to the queue…")
        try:
            if self.supervisor is not None:
                address = await self.supervisor.start()
            else:
                assert self.address is not None
                address = self.address
                self.pool.set_address(address)
        except (ServerError, QueueUnavailable, redis.RedisError, OSError) as exc:
            self.window.set_queue_state(False, str(exc))
            self.show_message(f"The queue could not start: {exc}")
            self.window.tell_error(f"The queue could not start:\n{exc}")
            return
        self.address = self.following.address = address
        reader = QueueReader(address, self.settings)
        reader.connection_changed.connect(self._on_connection)
        reader.snapshot.connect(self._on_snapshot)
        reader.changed.connect(self._on_changes)
        self.reader = reader
        reader.start()
        if self.supervisor is not None:
            self.tasks.spawn(self._start_api(self.supervisor), "HTTP API")
        else:
            self._keep_batches(None)
        self._tick.start()
        self._status.start()
        self.tasks.spawn(self.refresh_status(), "status")

    async def _start_api(self, supervisor: Supervisor) -> None:
        """The HTTP API beside the worker (once the stream is read: its announcement is seen);
        the app keeps the batches moving itself while it runs none."""
        self._keep_batches(await supervisor.start_api())

    def ask_quit(self) -> None:
        """Quit from the menu or the tray: asks first while jobs run or wait."""
        if not self._quitting:
            self.quitting.ask()

    def request_quit(self) -> None:
        """Quit now (a signal, the quit dialog's answer): jobs resume at the next start."""
        if not self._quitting:
            self.tasks.spawn(self.shutdown(), "Quit")

    async def shutdown(self) -> None:
        """Stop threads, then the processes we started, then close the window. Idempotent."""
        if self._quitting:
            await self._done.wait()
            return
        self._quitting = True
        self.quitting.show_stopping()
        self.tray.icon.setToolTip("PromptSpool — quitting…")
        try:
            self.window.save_state()
            for timer in (self._tick, self._status, self._counts):
                timer.stop()
            await self.tasks.cancel_all()
            if self.reader is not None:
                self.reader.stop()
                await self.pool.run(self.reader.wait)
                self.reader.deleteLater()
                self.reader = None
            await self.following.close(self.pool.run)
            if self.keeper is not None:
                keeper, self.keeper = self.keeper, None
                await self.pool.run(keeper.stop)
            if self.supervisor is not None:
                await self.supervisor.shutdown()
        finally:
            self.pool.close()
            self.commands.close()
            self.tray.close()
            self.window.close_for_good()
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
        else:  # no tray to come back from: ask while jobs run or wait
            self.quitting.ask(background=self.settings.keep_in_tray)

    # --- queue events -----------------------------------------------------------------

    def _keep_batches(self, api: ApiStatus | None) -> None:
        """Batches move on (end, and say so) when someone settles them as their jobs end: the
        HTTP API's process does. While no API of this home answers (it is off, refused or
        down, or this window supervises nothing), the app settles them itself."""
        wanted = (
            not self._quitting
            and self.address is not None
            and (api is None or api.state is not ApiState.ready)
        )
        if wanted and self.keeper is None and self.address is not None:
            self.keeper = BatchKeeper(self.address, self.settings)
            self.keeper.start()
        elif not wanted and self.keeper is not None:
            keeper, self.keeper = self.keeper, None
            self.tasks.spawn(self.pool.run(keeper.stop), "Batches")

    def _on_connection(self, reachable: bool, reason: str) -> None:
        self._reachable = reachable
        self.window.set_queue_state(reachable, reason, self._paused)
        self._schedule_counts()
        if reachable:
            self.show_message("Connected to the queue")
            return
        self.show_message(f"The queue is not reachable: {reason}")
        if self.supervisor is not None and not self._quitting:
            recover = self.supervisor.recover_server(lambda: self._reachable or self._quitting)
            self.tasks.spawn(recover, "Server")

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
            if selected and not self.window.current_job():
                self.window.select_job(selected)
            self.ready.emit()
        self._select_if_listed()
        self.tasks.spawn(self._read_batch_ends(), "batches")

    async def _read_batch_ends(self) -> None:
        """How the listed batches ended, read from the queue: the events that said so may
        have come while the app was not running."""
        unknown = [b for b in self.jobs.batch_counts() if b not in self._batch_ends]
        if not unknown:
            return
        statuses = await self.pool.call(lambda client: BatchStore(client.redis).statuses(unknown))
        self._batch_ends.update({b: st for b, st in statuses.items() if st in ENDED})
        self._schedule_counts()

    def _on_changes(self, changes: Changes) -> None:
        self.jobs.apply_progress(changes.progress)
        if changes.rows:
            self.jobs.upsert(changes.rows)
        if changes.removed:
            self.jobs.remove(changes.removed)
        if changes.positions is not None:
            self.jobs.apply_positions(changes.positions)
        for event in changes.states:
            self._notify(event)
        for event in changes.announcements:
            self._announced(event)
        if changes.paused is not None:
            self._set_paused(changes.paused)
        if changes.workers_changed or changes.states:
            self.tasks.spawn(self.refresh_status(), "status")  # e.g. a model just loaded
        if changes.rows or changes.removed:
            self._schedule_counts()
        self._select_if_listed()

    def _notify(self, event: Event) -> None:
        state = event.state
        if state is None or state not in FINISHED_STATES:
            return
        row = self.jobs.job(event.job_id)
        title = row.title if row is not None else event.job_id
        error = event.data.get("error") or None
        batch = row.batch if row is not None else None
        self.notifier.job_finished(event.job_id, title, state, error, batch)

    def _announced(self, event: Event) -> None:
        """An HTTP API that listens, or a batch that ended."""
        if event.type == "api" and self.supervisor is not None:
            self.supervisor.note_event(event)
        elif event.type == "batch" and (batch := str(event.data.get("batch") or "")):
            state = str(event.data.get("state") or "")
            self._batch_ends[batch] = state
            counts = event.data.get("counts")
            self.notifier.batch_finished(batch, state, counts if isinstance(counts, dict) else {})
            self._schedule_counts()

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.window.set_paused(paused)
        self.tray.set_paused(paused)
        self.window.set_queue_state(self._reachable, "", paused)
        self._schedule_counts()

    def _schedule_counts(self) -> None:
        if not self._counts.isActive():
            self._counts.start()

    def _update_counts(self) -> None:
        counts = self.jobs.counts()
        self.window.update_counts(counts)
        self.window.update_batches(summarize(self.jobs.batch_counts(), self._batch_ends))
        self.tray.update_state(counts, self._paused, self._reachable)
        self.quitting.update(counts, self._paused)

    def _on_worker_exited(self, outcome: ChildOutcome) -> None:
        self.tasks.spawn(self.refresh_status(), "status")
        if not self._quitting:
            self.show_message(f"The {outcome}; restarting it")

    async def refresh_status(self) -> None:
        """Workers, model, GPU and VRAM for the status bar; starts a worker if none is alive
        and replaces ours if it stopped answering."""
        if self._status_busy or self.pool.address is None:
            return
        self._status_busy = True
        try:
            workers = await self.pool.call(lambda client: client.workers())
            note = ""
            if self.supervisor is not None:
                await self.supervisor.check_hung(workers)
                await self.supervisor.check_api()
                if not workers:
                    note = "starting a worker…" if self.supervisor.worker_running else ""
                    if self._reachable:
                        self.supervisor.ensure_worker()
                if self._reachable:
                    self.supervisor.ensure_remote_worker(workers)
            self.window.set_workers(workers, note)
            self.window.set_vram(await self.pool.run(gpu_memory))
        except (QueueUnavailable, redis.RedisError, OSError) as exc:
            log.debug("status: %s", exc)
        finally:
            self._status_busy = False

    # --- the selected job -------------------------------------------------------------

    def follow(self, job_id: str) -> None:
        """Show the job in the detail pane and stream its events."""
        if self._quitting or not self.following.follow(job_id):
            self.window.show_no_job()

    def open_job(self, job_id: str) -> None:
        """Bring the window up with the job selected (a clicked notification)."""
        self.window.bring_to_front()
        if job_id:
            self.window.select_job(job_id)

    def open_batch(self, batch_id: str) -> None:
        """Bring the window up listing the batch's jobs (a clicked notification)."""
        self.window.bring_to_front()
        if batch_id:
            self.window.show_batch(batch_id)

    def _select_when_listed(self, job_id: str) -> None:
        self._select_pending = job_id
        self._select_if_listed()

    def _select_if_listed(self) -> None:
        pending = self._select_pending
        if pending and self.jobs.row_of(pending) is not None:
            self._select_pending = None
            self.window.select_job(pending)

    # --- messages ---------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.window.show_message(text)
        self.message.emit(text)

    def _apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.pool.settings = self.following.settings = settings
        self.notifier.enabled = settings.notifications
        self.tray.sound = settings.notify_sound
        if self.supervisor is not None:
            self.tasks.spawn(self.supervisor.apply_settings(settings), "HTTP API")
