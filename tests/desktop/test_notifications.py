"""Notifications without a tray go to the desktop's notification service over D-Bus."""

from __future__ import annotations

import json
import queue as queues
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtDBus import QDBusConnection
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.services.desktopnotify import DesktopNotifications
from desktop.window.notifier import Notifier
from desktop.window.tray import Tray
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue

WAIT_MS = 90_000

# A tiny freedesktop notification server: prints each Notify as a JSON line, and "clicks"
# notification N (emits ActionInvoked(N, "default")) when told "click N" on stdin.
SERVER = r"""
import json, sys
from PySide6.QtCore import ClassInfo, QCoreApplication, QObject, QSocketNotifier, Signal, Slot
from PySide6.QtDBus import QDBusConnection

@ClassInfo({"D-Bus Interface": "org.freedesktop.Notifications"})
class Server(QObject):
    ActionInvoked = Signal("uint", str)

    def __init__(self):
        super().__init__()
        self.count = 0

    @Slot(str, "uint", str, str, str, "QStringList", "QVariantMap", int, result="uint")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        self.count += 1
        note = {"id": self.count, "app": app, "replaces": replaces, "summary": summary,
                "body": body, "actions": list(actions)}
        print("NOTIFY " + json.dumps(note), flush=True)
        return self.count

    @Slot(result="QStringList")
    def GetCapabilities(self):
        return ["body", "actions"]

    def command(self):
        line = sys.stdin.readline()
        if not line:
            app.quit()
        elif line.startswith("click "):
            self.ActionInvoked.emit(int(line.split()[1]), "default")

app = QCoreApplication([])
bus = QDBusConnection.connectToBus(sys.argv[1], "server")
server = Server()
options = (QDBusConnection.RegisterOption.ExportAllSlots
           | QDBusConnection.RegisterOption.ExportAllSignals)
bus.registerObject("/org/freedesktop/Notifications", server, options)
stdin = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
stdin.activated.connect(server.command)
print("READY", bus.registerService("org.freedesktop.Notifications"), flush=True)
app.exec()
"""


@dataclass
class NotificationService:
    """A private session bus, optionally with the notification server on it."""

    address: str
    process: subprocess.Popen[str] | None = None
    received: queues.Queue[dict[str, Any]] = field(default_factory=queues.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def notifications(self) -> list[dict[str, Any]]:
        while not self.received.empty():
            self.seen.append(self.received.get_nowait())
        return self.seen

    def click(self, ident: int) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"click {ident}\n")
        self.process.stdin.flush()


def _read(process: subprocess.Popen[str], into: queues.Queue[dict[str, Any]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("NOTIFY "):
            into.put(json.loads(line.removeprefix("NOTIFY ")))


@pytest.fixture
def session_bus() -> Iterator[str]:
    """A private D-Bus session bus (its address); skipped where no dbus-daemon exists."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("no dbus-daemon binary to run a private session bus (apt-get install dbus)")
    bus = subprocess.Popen(
        [daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        assert address.startswith("unix:"), address
        yield address
    finally:
        bus.terminate()
        bus.wait(timeout=10)
        if bus.stdout is not None:
            bus.stdout.close()


@pytest.fixture
def service(session_bus: str) -> Iterator[NotificationService]:
    """The notification server on the private bus."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, session_bus],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    reader: threading.Thread | None = None
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "READY True"
        found = NotificationService(session_bus, process)
        reader = threading.Thread(target=_read, args=(process, found.received), daemon=True)
        reader.start()
        yield found
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the server quits at the end of its input
        process.wait(timeout=10)
        if reader is not None:
            reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def desktop(session_bus: str) -> Iterator[DesktopNotifications]:
    """The app's side of the private bus."""
    name = f"promptspool-test-{id(session_bus)}"
    connection = QDBusConnection.connectToBus(session_bus, name)
    assert connection.isConnected()
    notifications = DesktopNotifications(connection)
    yield notifications
    QDBusConnection.disconnectFromBus(name)


def test_a_finished_job_is_told_through_the_desktop_when_no_tray_exists(
    qtbot: QtBot,
    desk: Controller,
    queue: Queue,
    tiny_model: Path,
    service: NotificationService,
    desktop: DesktopNotifications,
) -> None:
    desk.tray.available = False  # bare X, stock GNOME
    desk.tray.use_desktop(desktop)
    queue.start_worker()
    with qtbot.waitSignal(desktop.sent, timeout=WAIT_MS) as sent:
        [job_id] = queue.client.submit(
            [JobSpec(model=str(tiny_model), prompt="Tell me", title="bedtime story", max_tokens=8)]
        )
    qtbot.waitUntil(lambda: bool(service.notifications()), timeout=WAIT_MS)
    [note] = service.notifications()
    assert (note["summary"], note["body"], note["app"]) == (
        "Job finished",
        "bedtime story",
        "PromptSpool",
    )
    assert note["replaces"] == 0 and "default" in note["actions"]
    # Clicking it opens the job, as a click on the tray's message does.
    with qtbot.waitSignal(desk.tray.job_requested, timeout=WAIT_MS) as opened:
        service.click(sent.args[0])
    assert opened.args == [job_id]
    qtbot.waitUntil(lambda: desk.window.table.current_job() == job_id, timeout=WAIT_MS)


def test_without_a_notification_service_it_says_so_and_the_window_still_tells(
    qtbot: QtBot, desktop: DesktopNotifications
) -> None:
    notifier = Notifier()
    tray = Tray(notifier, available=False, desktop=desktop)
    with qtbot.waitSignal(desktop.failed, timeout=WAIT_MS) as failed:
        notifier.job_finished("j1", "lonely job", JobState.succeeded, None)
        notifier.flush()
    assert "org.freedesktop.Notifications" in failed.args[0]
    tray.close()


def test_with_a_tray_the_tray_shows_it_and_the_sound_option_beeps(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, desktop: DesktopNotifications
) -> None:
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    shown: list[str] = []
    notifier = Notifier()
    tray = Tray(notifier, available=True, sound=True, desktop=desktop)
    monkeypatch.setattr(tray.icon, "isVisible", lambda: True)
    monkeypatch.setattr(tray.icon, "showMessage", lambda title, *_: shown.append(title))
    sent: list[object] = []
    desktop.sent.connect(sent.append)
    notifier.job_finished("j1", "tray job", JobState.succeeded, None)
    notifier.flush()
    assert shown == ["Job finished"] and beeps == [1]
    tray.sound = False
    notifier.job_finished("j2", "quiet job", JobState.failed, "boom")
    notifier.flush()
    assert shown == ["Job finished", "Job failed"] and beeps == [1]
    assert not sent  # the tray showed them: not the desktop's service too
    tray.close()
