"""One window per user: a lock file decides, a local socket brings the first window forward."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ACTIVATE = b"activate\n"


class SingleInstance(QObject):
    """`acquire()` wins for the first instance; later ones `notify_running()` and exit."""

    activated = Signal()

    def __init__(self, runtime_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lock_path = runtime_dir / "gui.lock"
        self.socket_path = str(runtime_dir / "gui.sock")
        self._lock: IO[str] | None = None
        self._server: QLocalServer | None = None

    @property
    def primary(self) -> bool:
        return self._lock is not None

    def acquire(self) -> bool:
        """Take the per-user lock and listen; False when another instance holds it."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.lock_path, "a")  # noqa: SIM115 - held open for the app's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        QLocalServer.removeServer(self.socket_path)  # a stale socket of a crashed instance
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.socket_path):
            log.warning("cannot listen on %s: %s", self.socket_path, server.errorString())
        server.newConnection.connect(self._on_connection)
        self._server = server
        return True

    def notify_running(self, timeout_ms: int = 3000) -> bool:
        """Ask the running instance to come to the front (blocking; before any window exists)."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            socket = QLocalSocket()
            socket.connectToServer(self.socket_path)
            if socket.waitForConnected(250):
                socket.write(ACTIVATE)
                sent = socket.waitForBytesWritten(1000)
                socket.disconnectFromServer()
                return sent
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)  # the first instance holds the lock but is not listening yet

    def _on_connection(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            socket.readyRead.connect(self._on_ready)
            socket.disconnected.connect(socket.deleteLater)

    def _on_ready(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket) and ACTIVATE.strip() in bytes(socket.readAll().data()):
            self.activated.emit()

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
            if os.path.exists(self.socket_path):
                QLocalServer.removeServer(self.socket_path)
