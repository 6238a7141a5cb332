"""Nobody but the user reaches the queue: unix socket only, private files, a password,
JSON only on the wire, and no prompt or output text in the logs."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.reliability.support import spec
from worker.hosting.tlsdoor import TlsForwarder, self_signed_certificate
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.queue.celery_app import TASK_NAME, broker_queue_keys
from worker.testing.harness import Queue, ServeProcess, last_event_id, wait_for_event

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _inet_sockets(kinds: tuple[str, ...] = ("tcp", "tcp6", "udp", "udp6")) -> dict[str, str]:
    """inode -> 'kind local-address state' for every IPv4/IPv6 socket on the machine."""
    found = {}
    for kind in kinds:
        path = Path("/proc/net") / kind
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            found[fields[9]] = f"{kind} {fields[1]} state={fields[3]}"
    return found


@linux_only
def test_no_tcp_or_udp_port_is_open_by_serve_its_server_or_its_worker(serve: ServeProcess) -> None:
    with serve.client() as client:
        pids = [serve.process.pid, serve.server_pid, *(int(w["pid"]) for w in client.workers())]
    assert len(pids) == 3
    inet = _inet_sockets()
    for pid in pids:
        opened = [inet[inode] for inode in _socket_inodes(pid) if inode in inet]
        assert opened == [], f"pid {pid} has network sockets: {opened}"


def test_socket_dir_is_0700_and_secrets_are_0600(queue: Queue) -> None:
    runtime = queue.settings.paths.runtime
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    for name in ("server.password", "valkey.conf"):  # the config holds the password too
        assert stat.S_IMODE((runtime / name).stat().st_mode) == 0o600, name
    sock = runtime / "server.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0, "only the owner may connect"
    password = (runtime / "server.password").read_text().strip()
    assert password not in (queue.home / "logs" / "server.log").read_text()


def test_everything_the_queue_writes_is_private_to_the_user(
    serve: ServeProcess, tiny_model: Path, tmp_path: Path
) -> None:
    """Folders 0700 and files 0600 under the home: the server's append-only files (which
    hold every prompt and output), its log, the settings, the logs, and CLI exports."""
    with serve.client() as client:
        [job_id] = client.submit([JobSpec(model=str(tiny_model), prompt="secret", max_tokens=4)])
        assert client.wait(job_id, timeout=120).state is JobState.succeeded
    export = serve.home / "data" / "export.md"
    env = {**os.environ, "PROMPTSPOOL_HOME": str(serve.home)}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "export", "--format", "md", "-o", str(export)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    aof = list((serve.home / "data").rglob("*.aof"))
    assert aof and (serve.home / "logs" / "server.log").exists()
    for path in [serve.home, *serve.home.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path}: {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{path}: {oct(mode)}"


@pytest.mark.parametrize("password", [None, "guess"])
def test_a_connection_without_the_password_is_refused(queue: Queue, password: str | None) -> None:
    sock = str(queue.settings.paths.runtime / "server.sock")
    client = redis.Redis(unix_socket_path=sock, password=password, retry=Retry(NoBackoff(), 0))
    with client, pytest.raises(redis.AuthenticationError):
        client.lpush(broker_queue_keys()[0], "{}")
    with socket.socket(socket.AF_UNIX) as raw:  # what any program would see, byte for byte
        raw.connect(sock)
        raw.sendall(b"KEYS *\r\n")
        assert raw.recv(200).startswith(b"-NOAUTH")
    assert queue.redis.llen(broker_queue_keys()[0]) == 0


class _Marker:
    """Pickles to a call that creates `path` when unpickled: what an attacker would send."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[pathlib.Path]]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_a_pickled_message_is_refused_and_never_executed(
    queue: Queue, tmp_path: Path, tiny_model: Path
) -> None:
    q = queue
    log = tmp_path / "worker.log"
    q.start_worker(log=log)
    marker = tmp_path / "unpickled"
    # The client side may serialize with pickle; only the worker's accept_content decides.
    q.client.app.send_task(TASK_NAME, args=[_Marker(marker), 1], serializer="pickle")
    [after] = q.client.submit([spec(tiny_model, max_tokens=3)])  # queued behind it
    q.wait_state(after, "succeeded")
    assert not marker.exists(), "the pickle payload was executed"
    assert all(q.redis.llen(name) == 0 for name in broker_queue_keys()), "it was consumed"
    assert q.workers[0].process.poll() is None
    assert "Refusing to deserialize untrusted content of type pickle" in log.read_text()


def test_prompt_and_output_text_never_reach_info_logs(
    serve: ServeProcess, stories_model: Path, tiny_model: Path
) -> None:
    """`serve` and its worker log at INFO: ids, states and models, never the text."""
    secret = "Zanzibar-quokka-7731 told a story"
    with serve.client() as client:
        ok, short, cancelled = client.submit(
            [
                spec(stories_model, prompt=secret, max_tokens=60, seed=3),
                spec(tiny_model, prompt=secret + " " + "word " * 5000, max_tokens=4),
                spec(tiny_model, prompt=secret, max_tokens=100_000),
            ]
        )
        jobs = {job_id: client.wait(job_id, timeout=60) for job_id in (ok, short)}
        for event in client.events(cancelled):
            if event.type == "tokens":
                client.cancel(cancelled)
            if event.state is JobState.cancelled:
                break
        jobs[cancelled] = client.get(cancelled)
    assert jobs[ok].state is JobState.succeeded and len(jobs[ok].output) > 40
    assert jobs[short].state is JobState.failed
    serve.stop()
    logs = "\n".join(serve.lines)
    assert "INFO" in logs and "promptspool.run_job" in logs, "INFO logs were captured"
    assert "Zanzibar" not in logs
    for job in jobs.values():
        for piece in (job.output[i : i + 24] for i in range(0, max(0, len(job.output) - 24), 24)):
            assert piece not in logs, f"output text of {job.id} in the logs: {piece!r}"


# --- remote workers over TLS -------------------------------------------------------------------


def _door(serve: ServeProcess) -> tuple[int, Path]:
    """The port and certificate that `serve --remote` announced."""
    line = serve.lines[serve.wait_line("remote workers may join over TLS at")]
    found = re.search(r" at \S+:(\d+)\. .* a copy of (\S+) and the password", line)
    assert found, line
    return int(found[1]), Path(found[2])


def _tls_url(password: str, port: int, cert: Path | None) -> str:
    query = f"ssl_ca_certs={cert}" if cert else "ssl_cert_reqs=required"
    return f"rediss://:{password}@127.0.0.1:{port}/0?{query}"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_remote_worker_joins_over_tls_with_the_password(
    isolated_home: Path, tmp_path: Path, slow_model: Path, tiny_model: Path
) -> None:
    serve = ServeProcess.start(
        isolated_home, {"PROMPTSPOOL_HEARTBEAT_TTL": "2"}, args=("--remote", "127.0.0.1:0")
    )
    remote: subprocess.Popen[bytes] | None = None
    try:
        port, cert = _door(serve)
        password = (isolated_home / "run" / "server.password").read_text().strip()
        assert password not in "\n".join(serve.lines), "the password is never printed"
        assert stat.S_IMODE((cert.parent / "key.pem").stat().st_mode) == 0o600
        # Refused: plain TCP, TLS without trusting the certificate, TLS with a wrong password.
        plain = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5,
                            retry=Retry(NoBackoff(), 0))  # fmt: skip
        with plain, pytest.raises(redis.ConnectionError):
            plain.ping()
        for url, error in (
            (_tls_url(password, port, None), "certificate verify failed"),
            (_tls_url("guess", port, cert), "invalid username-password"),
        ):
            probe = redis.Redis.from_url(url, socket_timeout=5, retry=Retry(NoBackoff(), 0))
            with probe, pytest.raises(redis.RedisError, match=error):
                probe.ping()

        with serve.client() as client:
            [busy] = client.submit([spec(slow_model, max_tokens=100_000)])  # the local worker
            for event in client.events(busy):
                if event.type == "tokens":
                    break
            after = last_event_id(client.redis)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
            env["PROMPTSPOOL_HOME"] = str(tmp_path / "elsewhere")  # another machine's home
            env["PROMPTSPOOL_REDIS_URL"] = _tls_url(password, port, cert)
            remote = subprocess.Popen(
                [sys.executable, "-m", "worker", "worker", "--loglevel", "WARNING"], env=env
            )
            ready = wait_for_event(
                client.redis,
                lambda e: e.type == "worker" and e.data.get("state") == "ready",
                after=after,
            )
            [job_id] = client.submit([spec(tiny_model, max_tokens=6)])
            job = client.wait(job_id, timeout=60)
            assert job.state is JobState.succeeded and job.output
            assert job.worker == ready.data["worker"], "the remote worker ran it"
            client.cancel(busy)
    finally:
        if remote is not None:
            remote.terminate()
            remote.wait(30)
        serve.stop()


def test_the_tls_door_closes_connections_that_do_not_authenticate(
    queue: Queue, tmp_path: Path
) -> None:
    """Each open connection would hold one of the server's clients: a stranger's are closed
    unless their first command authenticates, and no more than the cap are open at once."""
    cert, key = self_signed_certificate(tmp_path / "tls", ["127.0.0.1"])
    door = TlsForwarder("127.0.0.1", 0, queue.settings.paths.runtime / "server.sock", cert, key,
                        auth_timeout_s=0.5, max_connections=3)  # fmt: skip
    _, port = door.start()
    context = ssl.create_default_context(cafile=str(cert))
    try:
        clients_before = len(queue.redis.client_list())
        strangers = []
        for _ in range(5):  # silent after the handshake; the last two are over the cap
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            strangers.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
        for stranger in strangers:  # each is closed by the door: EOF
            with stranger:
                assert stranger.recv(100) == b""
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as nosy:
            nosy.sendall(b"KEYS *\r\n")  # not AUTH first: closed without an answer
            assert nosy.recv(100) == b""
        url = _tls_url(queue.server.password(), port, cert)
        worker_like = redis.Redis.from_url(url, socket_timeout=5, retry=Retry(NoBackoff(), 0))
        with worker_like:
            assert worker_like.ping()
        assert len(queue.redis.client_list()) <= clients_before + 1
    finally:
        door.stop()
