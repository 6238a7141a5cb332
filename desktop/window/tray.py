"""The system tray icon: the queue's state at a glance, a menu, and the notifications (through
the desktop's notification service where no tray exists)."""

from __future__ import annotations

import functools
import sys
from collections import Counter
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from desktop.common.icons import action_icon, app_icon
from desktop.window.notifier import Notifier
from worker.jobs.job import JobState

if TYPE_CHECKING:
    from desktop.services.desktopnotify import DesktopNotifications

BADGE_RUNNING = "#3b82f6"
BADGE_FAILED = "#dc2626"
HEADLESS_PLATFORMS = ("offscreen", "minimal")  # no desktop to notify: tests, CI


def tray_summary(counts: Counter[JobState], paused: bool, reachable: bool) -> str:
    """'running 1 · queued 3 · failed 1', 'idle', with the pause and reachability."""
    if not reachable:
        return "queue not reachable"
    parts = [
        f"{state.value} {counts[state]}"
        for state in (JobState.running, JobState.loading, JobState.queued, JobState.failed)
        if counts[state]
    ]
    text = " · ".join(parts) if parts else "idle"
    return f"paused · {text}" if paused else text


@functools.cache
def badged_icon(color_name: str | None) -> QIcon:
    """The app icon with a coloured dot in the corner (None: plain)."""
    if color_name is None:
        return app_icon()
    color = QColor(color_name)
    pixmap = app_icon().pixmap(64, 64)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("white"))
    painter.drawEllipse(QRectF(38, 38, 26, 26))
    painter.setBrush(color)
    painter.drawEllipse(QRectF(41, 41, 20, 20))
    painter.end()
    return QIcon(QPixmap(pixmap))


def default_desktop() -> DesktopNotifications | None:
    """The session bus's notification service (Linux and the BSDs), unless Qt runs without
    a desktop or has no D-Bus module."""
    if QApplication.platformName() in HEADLESS_PLATFORMS or sys.platform in ("darwin", "win32"):
        return None
    try:
        from desktop.services.desktopnotify import DesktopNotifications
    except ImportError:
        return None
    return DesktopNotifications()


class Tray(QObject):
    """Tray icon and menu; shows the notifier's notifications in the tray when one exists,
    else through the desktop's notification service (`desktop`), with a beep if `sound`."""

    show_requested = Signal()
    pause_requested = Signal(bool)  # True: pause
    quit_requested = Signal()
    job_requested = Signal(str)  # a job's notification was clicked
    batch_requested = Signal(str)  # a batch's notification was clicked

    def __init__(
        self,
        notifier: Notifier,
        parent: QObject | None = None,
        *,
        available: bool | None = None,
        sound: bool = False,
        desktop: DesktopNotifications | None = None,
    ) -> None:
        """`available`: whether a system tray exists (None: ask Qt); `desktop`: where
        notifications go without one (None: the session bus's service, if a desktop runs)."""
        super().__init__(parent)
        self.available = QSystemTrayIcon.isSystemTrayAvailable() if available is None else available
        self.sound = sound
        self.desktop: DesktopNotifications | None = None
        self.use_desktop(desktop if desktop is not None else default_desktop())
        self.icon = QSystemTrayIcon(app_icon(), self)
        self._paused = False
        self._last_job = ""
        self._last_batch = ""
        self.menu = QMenu()
        self.show_action = QAction("Show PromptSpool", self.menu)
        self.show_action.triggered.connect(self.show_requested)
        self.status_action = QAction("idle", self.menu)
        self.status_action.setEnabled(False)
        self.pause_action = QAction(action_icon("pause"), "Pause the queue", self.menu)
        self.pause_action.triggered.connect(lambda: self.pause_requested.emit(not self._paused))
        self.quit_action = QAction("Quit PromptSpool", self.menu)
        self.quit_action.triggered.connect(self.quit_requested)
        for action in (self.show_action, self.status_action, self.pause_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon.setContextMenu(self.menu)
        self.icon.setToolTip("PromptSpool")
        self.icon.activated.connect(self._on_activated)
        self.icon.messageClicked.connect(self._on_message_clicked)
        notifier.notified.connect(self.show_message)
        notifier.batch_notified.connect(self.show_batch_message)

    def use_desktop(self, desktop: DesktopNotifications | None) -> None:
        """Send the notifications to this desktop notification service while no tray shows them."""
        if self.desktop is not None:
            self.desktop.clicked.disconnect(self._on_desktop_clicked)
        self.desktop = desktop
        if desktop is not None:
            desktop.setParent(self)
            desktop.clicked.connect(self._on_desktop_clicked)

    def show(self) -> None:
        if self.available:
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def close(self) -> None:
        self.icon.hide()
        self.menu.deleteLater()

    def update_state(self, counts: Counter[JobState], paused: bool, reachable: bool) -> None:
        summary = tray_summary(counts, paused, reachable)
        self.icon.setToolTip(f"PromptSpool — {summary}")
        self.status_action.setText(summary[:1].upper() + summary[1:])
        self.set_paused(paused)
        busy = counts[JobState.running] or counts[JobState.loading]
        color = BADGE_FAILED if counts[JobState.failed] else BADGE_RUNNING if busy else None
        self.icon.setIcon(badged_icon(color))

    def set_paused(self, paused: bool) -> None:
        """What the pause action does next follows the queue at once."""
        if paused != self._paused:
            self._paused = paused
            self.pause_action.setText("Resume the queue" if paused else "Pause the queue")
            self.pause_action.setIcon(action_icon("resume" if paused else "pause"))

    def show_message(self, title: str, message: str, job_id: str) -> None:
        """A notification whose click opens the job `job_id`."""
        self._last_job, self._last_batch = job_id, ""
        self._show(title, message)

    def show_batch_message(self, title: str, message: str, batch_id: str) -> None:
        """A notification whose click shows the batch's jobs."""
        self._last_job, self._last_batch = "", batch_id
        self._show(title, message)

    def _show(self, title: str, message: str) -> None:
        """In the tray, or the desktop's notifications; the status bar says it anyway."""
        key = f"batch:{self._last_batch}" if self._last_batch else f"job:{self._last_job}"
        if self.available and self.icon.isVisible():
            self.icon.showMessage(title, message, app_icon(), 6000)
        elif self.desktop is not None:
            self.desktop.notify(title, message, key)
        if self.sound:
            QApplication.beep()

    def _on_desktop_clicked(self, key: str) -> None:
        kind, _, ident = key.partition(":")
        if kind == "batch" and ident:
            self.batch_requested.emit(ident)
        elif kind == "job" and ident:
            self.job_requested.emit(ident)

    def _on_message_clicked(self) -> None:
        if self._last_batch:
            self.batch_requested.emit(self._last_batch)
        elif self._last_job:
            self.job_requested.emit(self._last_job)

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.show_requested.emit()
