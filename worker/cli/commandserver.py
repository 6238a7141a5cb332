"""The command server: a warm `promptspool` that runs short commands for the `promptspool`
started by the user, each in a child forked from it, with that process's arguments,
environment, folder and terminal; so they start in tens of milliseconds, not hundreds.

(Mercurial's chg does the same for `hg`.) The server imports what the commands need once,
then waits on a unix socket in the user's private runtime folder, answering only its own
user. It runs no command itself and opens no connection, so each child starts clean and
reads the settings and the queue afresh. It goes away after `IDLE_EXIT_S` without work, when
its socket is removed or replaced, or as soon as the installed code changes (the caller
then runs the command itself). The first short command run without a server starts one
(`start_in_background`), unless the `cli_server` setting is off.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import worker
from worker.cli.commandclient import GO, HEADER, MAX_REQUEST, answers, socket_path
from worker.paths import AppPaths

log = logging.getLogger(__name__)

IDLE_EXIT_S = 600.0
LOOK_S = 1.0  # how often an idle server looks whether it is still wanted
LOG_NAME = "cli-server.log"
MAX_LOG_BYTES = 1 << 20
REQUEST_WAIT_S = 2.0  # for a caller's first bytes, which it sends as soon as it connects
GO_WAIT_S = 10.0  # the caller answers at once; a stopped caller may give no go at all
# What the short commands import; the children find it loaded.
PRELOAD = (
    "worker.queue.client",
    "worker.queue.celery_app",
    "worker.queue.connection",
    "worker.jobs.export",
    "worker.jobs.intake",
    "worker.jobs.promptfiles",
    "worker.jobs.validation",
    "worker.engine.stats",
    "worker.hosting.children",
    "kombu.transport.redis",
    # What Celery imports on its first send_task.
    "celery.app.amqp",
    "celery.app.events",
    "celery.app.task",
    "celery.backends.base",
    "celery.canvas",
    "celery.events.dispatcher",
    "celery.fixups.django",
    "celery.loaders.app",
    "celery.result",
    "celery.worker.worker",
)

Stamp = tuple[tuple[str, int, int], ...]
Command = Callable[[list[str]], int]


def code_stamp() -> Stamp:
    """Each loaded module of ours, and each site-packages folder on sys.path (installing or
    upgrading a package changes it), with mtime and size: a change means the children
    would run older code than a fresh `promptspool` would."""
    root = str(Path(worker.__file__).parent)
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    packages = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    watched = [f for f in files if f and f.startswith(root)] + packages
    stamp = []
    for path in watched:
        try:
            info = os.stat(path)
        except OSError:
            continue
        stamp.append((path, info.st_mtime_ns, info.st_size))
    return tuple(sorted(stamp))


def _warm_up() -> None:
    """Do once here what each command would do first (a first validation of the settings
    and of a job), so that children find it done."""
    from worker.jobs.job import Job
    from worker.settings import load_settings

    try:
        load_settings()
    except ValueError as exc:  # a bad settings file: each command reports it itself
        log.info("settings not read ahead: %s", exc)
    Job.model_validate(
        {"id": "warm", "spec": {"prompt": "warm", "model": "warm.gguf"}, "state": "queued",
         "created_at": 0.0}
    )  # fmt: skip


def serve(paths: AppPaths, command: Command, idle_s: float = IDLE_EXIT_S) -> int:
    """Serve until idle for `idle_s`, displaced, or out of date; 0 (also when another
    server already answers on the socket). `command(argv)` runs one command in a child and
    returns its exit status (the command line's `main`, which the caller has loaded)."""
    paths.ensure()
    os.chdir(paths.runtime)  # hold no folder of the user's
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a build without it: the children import what they use
            log.warning("not preloaded: %s: %s", name, exc)
    _warm_up()
    stamp = code_stamp()
    path = socket_path(paths)
    listener = _listen(path)
    if listener is None:
        log.info("another command server answers on %s", path)
        return 0
    inode = os.stat(path).st_ino
    signal.signal(signal.SIGTERM, _exit_on_signal)
    children: set[int] = set()
    last_used = time.monotonic()
    log.info("command server %d ready on %s", os.getpid(), path)
    try:
        while True:
            _reap(children)
            ready, _, _ = select.select([listener], [], [], LOOK_S)
            if not ready:
                if not _still_ours(path, inode):
                    log.info("the socket was removed or replaced: exiting")
                    return 0
                if not children and time.monotonic() - last_used > idle_s:
                    log.info("idle for %g s: exiting", idle_s)
                    return 0
                continue
            conn, _ = listener.accept()
            last_used = time.monotonic()
            if not _same_user(conn) or not _has_request(conn):
                conn.close()
                continue
            if code_stamp() != stamp:
                _reply(conn, {"retry": "the installed code changed"})
                conn.close()
                log.info("the installed code changed: exiting")
                return 0
            pid = os.fork()
            if pid == 0:  # the child: run one command, then leave without cleanups
                listener.close()
                _child_main(conn, command)
            children.add(pid)
            conn.close()
    finally:
        listener.close()
        if _still_ours(path, inode):
            path.unlink(missing_ok=True)


def start_in_background(paths: AppPaths) -> None:
    """Start a server for the next commands, detached, unless one answers already."""
    from worker.hosting.children import worker_command

    if answers(socket_path(paths)):
        return
    paths.ensure()
    log_path = paths.logs / LOG_NAME
    with contextlib.suppress(OSError):  # a line per command: keep the last two megabytes
        if log_path.stat().st_size > MAX_LOG_BYTES:
            os.replace(log_path, log_path.with_name(f"{LOG_NAME}.1"))
    with open(log_path, "ab") as log_file:
        subprocess.Popen(
            worker_command(role="cli-server", exit_with_parent=False),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,  # not in the terminal's group: its Ctrl-C is not for us
            close_fds=True,
        )


def _listen(path: Path) -> socket.socket | None:
    """A listening socket at `path` (0600), or None if a server answers there already. It is
    bound under a name of its own and renamed into place, so a client never meets a socket
    that is not listening yet."""
    if answers(path):
        return None
    staging = path.with_name(f"{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(staging))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    os.replace(staging, path)
    return listener


def _still_ours(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _same_user(conn: socket.socket) -> bool:
    """The caller is this user (Linux says who is on the other end; elsewhere the socket's
    0600 mode in a 0700 folder is the check)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _has_request(conn: socket.socket) -> bool:
    """Something was sent: a caller sends its request at once, a probe (is a server up?)
    closes without a word and needs no child."""
    ready, _, _ = select.select([conn], [], [], REQUEST_WAIT_S)
    if not ready:
        return False
    try:
        return bool(conn.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _reply(conn: socket.socket, reply: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request (length, then JSON) and the three descriptors sent with it."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < HEADER.size:
        raise ValueError("a request too short to read")
    (size,) = HEADER.unpack(data[: HEADER.size])
    if size > MAX_REQUEST:
        raise ValueError(f"a request of {size} bytes (at most {MAX_REQUEST})")
    body = data[HEADER.size :]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("the request ended early")
        body += chunk
    request = json.loads(body)
    if not isinstance(request, dict) or len(fds) != 3:
        raise ValueError("a request that is not one JSON object with three descriptors")
    return request, fds


def _child_main(conn: socket.socket, command: Command) -> NoReturn:
    """Whatever happens, the child never returns into the server's loop."""
    code = 1
    try:
        code = _run_child(conn, command)
    except BaseException:
        log.exception("the command server's child failed")
    finally:
        os._exit(code)


def _run_child(conn: socket.socket, command: Command) -> int:
    """In the forked child: take over the caller's streams, folder and environment, run the
    command, send back its exit status."""
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError) as exc:
        _reply(conn, {"retry": f"unreadable request: {exc}"})
        return 1
    if request.get("executable") != sys.executable or request.get("version") != worker.__version__:
        _reply(conn, {"retry": "the caller runs another installation"})
        return 0
    argv = [str(arg) for arg in request.get("argv", [])]
    if not _caller_says_go(conn):
        log.info("child %d: the caller left before %s began; nothing done", os.getpid(), argv[:1])
        return 0
    log.info("child %d runs %s", os.getpid(), argv[:1])
    try:
        _adopt(request, fds)
    except OSError as exc:  # its folder is gone, say: nothing ran, it runs the command itself
        _reply(conn, {"retry": f"cannot take the caller's place: {exc}"})
        return 0
    done = threading.Event()
    threading.Thread(target=_interrupt_when_caller_leaves, args=(conn, done), daemon=True).start()
    code = _run_command(command, argv)
    done.set()
    _reply(conn, {"exit": code})
    return 0


def _caller_says_go(conn: socket.socket) -> bool:
    """Accept the request, then wait for the caller's go: it gives up on a server that
    took too long (it was stopped) and runs the command itself, so this one must not."""
    _reply(conn, {"accepted": True})
    conn.settimeout(GO_WAIT_S)
    try:
        go = conn.recv(len(GO))
    except OSError:
        return False
    conn.settimeout(None)
    return go == GO


def _adopt(request: dict[str, Any], fds: list[int]) -> None:
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    # New stream objects on the caller's descriptors: line-buffered on a terminal, as
    # Python would have made them there.
    encoding = sys.stdout.encoding or "utf-8"
    line = 1 if os.isatty(1) else -1
    sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=encoding, closefd=False, buffering=line)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding=encoding, errors="backslashreplace", closefd=False, buffering=1
    )
    os.chdir(str(request["cwd"]))
    env = request.get("env")
    if isinstance(env, dict):
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
    root = logging.getLogger()
    for handler in list(root.handlers):  # the command configures its own, on its stderr
        root.removeHandler(handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt_when_caller_leaves(conn: socket.socket, done: threading.Event) -> None:
    """The caller was interrupted (Ctrl-C) or killed: stop the command as Ctrl-C would."""
    with contextlib.suppress(OSError):
        conn.recv(1)
    if not done.is_set():
        os.kill(os.getpid(), signal.SIGINT)


def _run_command(command: Command, argv: list[str]) -> int:
    try:
        code: object = command(argv)
    except SystemExit as exc:  # argparse: usage errors (2), --help (0)
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
