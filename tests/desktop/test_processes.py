"""The app's processes: it starts and supervises server and worker, quits leaving none behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.services.single_instance import SingleInstance
from tests.desktop.support import close_app, run_soon
from worker.hosting.children import HUNG_REASON, ChildOutcome
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.queue.client import JobClient
from worker.settings import load_settings
from worker.testing.harness import Queue, last_event_id, wait_for_event

START_MS = 90_000


def children(pid: int) -> set[int]:
    """Live (not zombie) direct children of `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_app_starts_its_queue_restarts_a_dead_worker_and_stops_everything(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, isolated_home: Path
) -> None:
    before = children(os.getpid())
    controller = Controller(load_settings())
    supervisor = controller.supervisor
    assert supervisor is not None
    try:
        with qtbot.waitSignals([controller.ready, supervisor.worker_started], timeout=START_MS):
            run_soon(qloop, controller.start())
        assert supervisor.owns_server
        assert supervisor.server is not None and supervisor.server.process is not None
        server_pid = supervisor.server.process.pid
        first_worker = supervisor.worker_pid
        assert first_worker is not None
        status = controller.window.status
        qtbot.waitUntil(lambda: status.workers.text().startswith("1 worker"), timeout=START_MS)
        # A worker that dies is restarted, and the window says so.
        messages: list[str] = []
        controller.message.connect(messages.append)
        with qtbot.waitSignal(supervisor.worker_exited, timeout=START_MS) as exited:
            os.kill(first_worker, signal.SIGKILL)
        outcome = exited.args[0]
        assert isinstance(outcome, ChildOutcome) and outcome.crashed
        assert "crashed (signal 9)" in str(outcome)
        assert any("restarting" in m for m in messages)
        with qtbot.waitSignal(supervisor.worker_started, timeout=START_MS):
            pass
        second_worker = supervisor.worker_pid
        assert second_worker not in (None, first_worker)
        qtbot.waitUntil(lambda: status.workers.text().startswith("1 worker"), timeout=START_MS)
        assert (isolated_home / "logs" / "worker.log").stat().st_size > 0
    finally:
        close_app(qtbot, controller)
    assert not alive(server_pid)
    assert second_worker is not None and not alive(second_worker)
    assert children(os.getpid()) <= before
    assert not (isolated_home / "run" / "server.sock").exists()


def test_second_launch_brings_the_first_forward_and_sigterm_quits_cleanly(queue: Queue) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    command = [sys.executable, "-m", "desktop", "gui"]
    after = last_event_id(queue.redis)
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The app attaches to the running server and starts a worker, since none is alive.
        ready = wait_for_event(
            queue.redis,
            lambda e: e.type == "worker" and e.data.get("state") == "ready",
            after=after,
            timeout=START_MS / 1000,
        )
        worker_pid = int(str(ready.data["worker"]).rsplit("-", 2)[1])
        assert worker_pid in children(first.pid)
        second = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=START_MS / 1000)
        assert first.returncode == 0, err.decode(errors="replace")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not alive(worker_pid)
    assert queue.redis.ping()  # the server it attached to, but did not start, keeps running


def test_one_instance_per_user(qtbot: QtBot, tmp_path: Path) -> None:
    primary = SingleInstance(tmp_path)
    other = SingleInstance(tmp_path)
    try:
        assert primary.acquire()
        assert not other.acquire()
        with qtbot.waitSignal(primary.activated, timeout=10_000):
            assert other.notify_running()
    finally:
        primary.release()
    assert other.acquire()  # the lock is free once the first instance is gone
    other.release()


def test_app_replaces_its_worker_when_it_stops_answering(
    qtbot: QtBot,
    qloop: asyncio.AbstractEventLoop,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    slow_model: Path,
) -> None:
    """Its worker is stopped (SIGSTOP) mid-job: the app sees the heartbeat stand still, kills
    the worker, queues the job again and starts a new worker, which runs it."""
    monkeypatch.setenv("PROMPTSPOOL_HEARTBEAT_TTL", "2")
    controller = Controller(load_settings())
    supervisor = controller.supervisor
    assert supervisor is not None
    stopped: int | None = None
    try:
        with qtbot.waitSignals([controller.ready, supervisor.worker_started], timeout=START_MS):
            run_soon(qloop, controller.start())
        assert supervisor.address is not None
        client = JobClient(supervisor.address, load_settings())
        spec = JobSpec(model=str(slow_model), prompt="Once upon a time", max_tokens=600, seed=6)
        [job_id] = client.submit([spec])

        def streaming() -> bool:
            row = controller.jobs.job(job_id)
            return row is not None and row.state is JobState.running and row.done > 0

        qtbot.waitUntil(streaming, timeout=START_MS)
        messages: list[str] = []
        controller.message.connect(messages.append)
        stopped = supervisor.worker_pid
        assert stopped is not None
        with qtbot.waitSignal(supervisor.worker_exited, timeout=START_MS) as exited:
            os.kill(stopped, signal.SIGSTOP)
        assert "crashed (signal 9)" in str(exited.args[0])
        assert any(f"worker (pid {stopped}) stopped answering" in m for m in messages)
        # The event loop runs while the new worker starts and takes the job again.
        qtbot.waitUntil(
            lambda: (row := controller.jobs.job(job_id)) is not None and row.state.finished,
            timeout=START_MS,
        )
        done = client.get(job_id)
        assert done.state is JobState.succeeded and done.completion_tokens == 600
        assert [a.error for a in done.attempts[:-1]] == [HUNG_REASON]
        client.close()
    finally:
        if stopped is not None:
            with suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        close_app(qtbot, controller)
