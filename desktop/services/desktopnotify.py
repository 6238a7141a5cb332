"""Desktop notifications through the freedesktop notification service (D-Bus), without a tray."""

from __future__ import annotations

import logging
import threading
from typing import Any

from PySide6.QtCore import Q_ARG, Q_RETURN_ARG, SLOT, QMetaObject, QObject, Qt, Signal, Slot
from PySide6.QtDBus import QDBusConnection, QDBusInterface

log = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
CALL_TIMEOUT_MS = 3000
SHOW_MS = 6000
DEFAULT_ACTION = "default"  # the action a click on the notification itself invokes


class DesktopNotifications(QObject):
    """Sends `Notify` to the session bus's notification service, off the GUI thread (a call
    blocks until the service answers); a click on one comes back as `clicked(key)`."""

    sent = Signal(int, str)  # the service's id for the notification, its key
    failed = Signal(str)  # why it could not be shown (no session bus, no service, an error)
    clicked = Signal(str)  # the key of a notification that was clicked

    def __init__(
        self,
        connection: QDBusConnection | None = None,
        app_name: str = "PromptSpool",
        icon: str = "promptspool",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.connection = connection if connection is not None else QDBusConnection.sessionBus()
        self.app_name = app_name
        self.icon = icon
        self._keys: dict[int, str] = {}
        self._listening = False
        self.sent.connect(self._remember)

    @property
    def connected(self) -> bool:
        """A session bus answers (whether a notification service runs is known on sending)."""
        return self.connection.isConnected()

    def notify(self, title: str, body: str, key: str = "") -> bool:
        """Show a notification (in the background); False at once when there is no bus."""
        if not self.connected:
            return False
        self._listen()
        worker = threading.Thread(
            target=self._send, args=(title, body, key), name="desktop-notify", daemon=True
        )
        worker.start()
        return True

    def _send(self, title: str, body: str, key: str) -> None:
        try:
            service = QDBusInterface(SERVICE, PATH, SERVICE, self.connection)
            if not service.isValid():
                self.failed.emit(service.lastError().message() or f"no {SERVICE} on the bus")
                return
            service.setTimeout(CALL_TIMEOUT_MS)
            ident = QMetaObject.invokeMethod(
                service, "Notify", Qt.ConnectionType.DirectConnection, Q_RETURN_ARG("uint"),
                Q_ARG("QString", self.app_name), Q_ARG("uint", 0), Q_ARG("QString", self.icon),
                Q_ARG("QString", title), Q_ARG("QString", body),
                Q_ARG("QStringList", [DEFAULT_ACTION, "Open"]),
                Q_ARG("QVariantMap", {"desktop-entry": "promptspool"}), Q_ARG("int", SHOW_MS),
            )  # fmt: skip
            error = service.lastError()
            if error.isValid():
                self.failed.emit(error.message())
            elif isinstance(ident, int):
                self.sent.emit(ident, key)
        except RuntimeError as exc:  # a Qt call refused
            self.failed.emit(str(exc))

    def _remember(self, ident: int, key: str) -> None:
        if key:
            self._keys[ident] = key
            while len(self._keys) > 100:
                del self._keys[next(iter(self._keys))]

    def _listen(self) -> None:
        if not self._listening:
            slot: Any = SLOT("_on_action(uint,QString)")  # a str, whatever the stubs say
            self._listening = self.connection.connect(
                SERVICE, PATH, SERVICE, "ActionInvoked", self, slot
            )

    @Slot("uint", str)
    def _on_action(self, ident: int, action: str) -> None:
        key = self._keys.get(int(ident))
        if key and action == DEFAULT_ACTION:
            self.clicked.emit(key)
