"""The app's HTTP API: started beside the worker, answered, restarted, reconfigured, stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.services.clientpool import ClientPool
from desktop.services.httpapi import ApiState
from desktop.services.supervisor import Supervisor
from desktop.window.settingsdialog import SettingsDialog
from tests.desktop.support import close_app, run_soon
from tests.desktop.test_processes import START_MS, alive
from worker.api.token import TokenFile
from worker.settings import load_settings
from worker.testing.harness import ApiProcess, Queue, free_port


def health(url: str) -> int:
    return httpx.get(f"{url}/health", timeout=10).status_code


def serving(supervisor: Supervisor, port: int | None = None) -> bool:
    """Ours is ready (on `port`), and its process is the one that announced it."""
    status = supervisor.api_status
    on_port = port is None or status.url.endswith(f":{port}")
    return status.state is ApiState.ready and supervisor.api.running and on_port


def keeps_batches(controller: Controller) -> bool:
    """Whether the app settles batches itself (it does while no API of its home answers)."""
    return controller.keeper is not None


def api_state(controller: Controller) -> ApiState:
    assert controller.supervisor is not None
    return controller.supervisor.api_status.state


def open_settings(controller: Controller) -> SettingsDialog:
    controller.commands.open_settings()
    dialog = controller.commands.settings_dialog
    assert dialog is not None
    return dialog


def save_api(qtbot: QtBot, controller: Controller, on: bool, port: int | None = None) -> None:
    """Turn the API on or off (on `port`) in the settings dialog, and save."""
    dialog = open_settings(controller)
    dialog.api_on.setChecked(on)
    assert dialog.api_port.isEnabled() is on
    if port is not None:
        dialog.api_port.setValue(port)
    with qtbot.waitSignal(dialog.saved, timeout=START_MS):
        dialog.save()


def replaced_when_killed(qtbot: QtBot, supervisor: Supervisor) -> int:
    """Kill our API: it is started again; the new pid."""
    killed = supervisor.api.pid
    assert killed is not None
    with qtbot.waitSignal(supervisor.api.exited, timeout=START_MS) as exited:
        os.kill(killed, signal.SIGKILL)
    assert str(exited.args[0]).startswith("HTTP API crashed (signal 9)")
    qtbot.waitUntil(
        lambda: serving(supervisor) and supervisor.api.pid not in (None, killed),
        timeout=START_MS,
    )
    assert supervisor.api.pid is not None
    return supervisor.api.pid


def check_the_token_is_copied(controller: Controller, url: str, config: Path) -> None:
    """The settings dialog shows where the API listens and copies the token it takes."""
    dialog = open_settings(controller)
    assert url in dialog.api_where.text()
    assert dialog.api_on.isChecked() and url.endswith(f":{dialog.api_port.value()}")
    dialog.copy_token.click()
    token = TokenFile(config).read()
    assert QGuiApplication.clipboard().text() == token
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/tasks", headers=bearer, timeout=10).status_code == 200
    assert httpx.get(f"{url}/tasks", timeout=10).status_code == 401
    dialog.reject()


def test_app_starts_the_api_restarts_it_takes_new_settings_and_stops_it_on_quit(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("PROMPTSPOOL_HTTP_PORT", str(port))
    controller = Controller(load_settings())
    supervisor = controller.supervisor
    assert supervisor is not None
    pids: list[int] = []
    try:
        with qtbot.waitSignals([controller.ready, supervisor.worker_started], timeout=START_MS):
            run_soon(qloop, controller.start())
        qtbot.waitUntil(lambda: serving(supervisor, port), timeout=START_MS)
        url = supervisor.api_status.url
        assert url == f"http://127.0.0.1:{port}"
        assert health(url) == 200
        assert not keeps_batches(controller)  # the API's process moves the batches on
        indicator = controller.window.status.api
        assert indicator.text() == f"API 127.0.0.1:{port}"
        assert url in indicator.toolTip() and "Copy token" in indicator.toolTip()
        pids.append(supervisor.api.pid or 0)
        pids.append(replaced_when_killed(qtbot, supervisor))
        assert health(url) == 200
        check_the_token_is_copied(controller, url, isolated_home / "config")

        # A new port: the API starts again there, and the old one no longer answers.
        moved = free_port()
        save_api(qtbot, controller, True, moved)
        qtbot.waitUntil(lambda: serving(supervisor, moved), timeout=START_MS)
        assert not alive(pids[-1])
        pids.append(supervisor.api.pid or 0)
        assert health(f"http://127.0.0.1:{moved}") == 200
        with pytest.raises(httpx.ConnectError):
            health(url)

        # Turned off: it stops, it is not restarted, and the status bar drops it.
        save_api(qtbot, controller, False)
        qtbot.waitUntil(lambda: supervisor.api_status.state is ApiState.off, timeout=START_MS)
        assert not supervisor.api.running and not alive(pids[-1])
        assert not indicator.isVisibleTo(controller.window)
        assert keeps_batches(controller)  # no API: the app moves the batches on
        stored = json.loads((isolated_home / "config" / "settings.json").read_text())
        assert stored["http_port"] == 0

        # On again, on the port it had; then quit: the app stops the API it started.
        assert open_settings(controller).api_port.value() == moved
        save_api(qtbot, controller, True)
        qtbot.waitUntil(lambda: serving(supervisor, moved), timeout=START_MS)
        pids.append(supervisor.api.pid or 0)
        assert not keeps_batches(controller)
    finally:
        close_app(qtbot, controller)
    assert all(pids) and not any(alive(pid) for pid in pids)
    assert (isolated_home / "logs" / "api.log").stat().st_size > 0


def test_app_starts_no_api_where_the_settings_refuse_it_or_one_serves_already(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    running_queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Plain HTTP on every interface is refused: the status bar says why, nothing starts.
    monkeypatch.setenv("PROMPTSPOOL_HTTP_PORT", str(free_port()))
    monkeypatch.setenv("PROMPTSPOOL_HTTP_HOST", "0.0.0.0")
    controller = Controller(load_settings())
    supervisor = controller.supervisor
    assert supervisor is not None
    messages: list[str] = []
    controller.message.connect(messages.append)
    try:
        with qtbot.waitSignal(controller.ready, timeout=START_MS):
            run_soon(qloop, controller.start())
        qtbot.waitUntil(lambda: api_state(controller) is ApiState.refused, timeout=START_MS)
        assert any("HTTP API was not started" in m and "without TLS" in m for m in messages)
        indicator = controller.window.status.api
        assert indicator.text() == "API not started"
        assert "PROMPTSPOOL_HTTP_INSECURE" in indicator.toolTip()
        assert supervisor.api.process is None
    finally:
        close_app(qtbot, controller)

    # An API already serving this home (a `serve`'s): shown, not started again, left running.
    monkeypatch.delenv("PROMPTSPOOL_HTTP_HOST")
    api = ApiProcess.start(running_queue)
    try:
        controller = Controller(load_settings())
        supervisor = controller.supervisor
        assert supervisor is not None
        try:
            with qtbot.waitSignal(controller.ready, timeout=START_MS):
                run_soon(qloop, controller.start())
            qtbot.waitUntil(lambda: api_state(controller) is ApiState.ready, timeout=START_MS)
            status = supervisor.api_status
            assert (status.state, status.url, status.owned) == (ApiState.ready, api.url, False)
            assert "run by another process" in controller.window.status.api.toolTip()
            assert supervisor.api.process is None
        finally:
            close_app(qtbot, controller)
        assert api.process.poll() is None
        assert health(api.url) == 200
    finally:
        api.stop()


def test_an_api_that_cannot_listen_says_why_and_is_tried_again(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("PROMPTSPOOL_HTTP_PORT", str(port))
        settings = load_settings()
        pool = ClientPool(settings)
        supervisor = Supervisor(settings, pool)
        supervisor.address = queue.address
        messages: list[str] = []
        supervisor.message.connect(messages.append)
        try:
            run_soon(qloop, supervisor.start_api())
            qtbot.waitUntil(lambda: supervisor.api_status.state is ApiState.down, timeout=START_MS)
            assert f"cannot listen on 127.0.0.1:{port}" in supervisor.api_status.detail
            assert any("restarting it in" in m and "is the port taken?" in m for m in messages)
            with qtbot.waitSignal(supervisor.api.exited, timeout=START_MS):
                pass  # tried again after its backoff
        finally:
            stopping = run_soon(qloop, supervisor.shutdown())
            qtbot.waitUntil(stopping.done, timeout=START_MS)
            pool.close()
        assert not supervisor.api.running
