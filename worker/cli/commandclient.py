"""Short commands through the warm command server, when one runs: imported at every start,
so it needs nothing beyond the standard library and `worker.paths`.

`promptspool list` (or show, submit, ...) sends its arguments, environment, folder and its
three standard streams (as descriptors) over the server's unix socket; a child forked from
the warm server runs the command there and sends back its exit status. Without a server (or
when it says its code is older than the caller's) the command runs in this process.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from worker import __version__
from worker.paths import AppPaths

SOCKET_NAME = "cli.sock"
ENV_SWITCH = "PROMPTSPOOL_CLI_SERVER"  # the `cli_server` setting, as the environment says it
OFF = frozenset({"0", "false", "no", "off"})
# Commands that end by themselves and own no process: worth a warm start. (`serve`, `worker`,
# `api` and the window run for long and own children; they always start here.)
FORWARDED = frozenset(
    {
        "list", "show", "watch", "cancel", "retry", "export", "submit", "batches",
        "workers", "pause", "resume", "token", "models",
    }
)  # fmt: skip
HEADER = struct.Struct("!I")  # the request's length, then its JSON
MAX_REQUEST = 1 << 20
ACCEPT_TIMEOUT_S = 3.0  # for the server's child to accept the request
GO = b"g"  # this side's word that the command may run
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def socket_path(paths: AppPaths | None = None) -> Path:
    return (paths or AppPaths.resolve()).runtime / SOCKET_NAME


def answers(path: Path) -> bool:
    """A command server listens at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def forwardable(argv: Sequence[str]) -> bool:
    """The command is one the server runs, and neither the environment nor the platform
    says no (the server needs fork and descriptors passed over unix sockets)."""
    if not argv or argv[0] not in FORWARDED:
        return False
    if os.environ.get(ENV_SWITCH, "").strip().lower() in OFF:
        return False
    return hasattr(os, "fork") and hasattr(socket, "send_fds")


def request_for(argv: Sequence[str]) -> dict[str, object]:
    """What the server's child needs to run the command as this process would have."""
    return {
        "argv": list(argv),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "executable": sys.executable,
        "version": __version__,
    }


def run_through_server(argv: Sequence[str]) -> int | None:
    """The command's exit status, run by the command server; None when it must run here
    (no server, or one that declined or did not accept in time: nothing ran there)."""
    if not forwardable(argv):
        return None
    try:
        request = request_for(argv)
    except OSError:  # the current folder is gone: let the command say so itself
        return None
    try:
        reply = _exchange(request)
    except _NotServed:
        return None
    except KeyboardInterrupt:  # Ctrl-C: the closed socket stops the command there too
        return EXIT_INTERRUPTED
    if reply is None:
        print("promptspool: the command server stopped before the command ended; check "
              "with `promptspool list` before running it again", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    if "retry" in reply:  # it could not take the caller's place (its folder is gone): run here
        return None
    code = reply.get("exit")
    return code if isinstance(code, int) else EXIT_FAILED


class _NotServed(Exception):
    """No server took the request: nothing ran."""


def _exchange(request: dict[str, object]) -> dict[str, object] | None:
    """Send the request with descriptors 0-2; the command's reply, or None if the server
    went away after it began the command.

    The command runs only once both sides agreed: the server's child says it accepted the
    request, and only then does this side say go. A server that does not accept in time
    (stopped by SIGSTOP, frozen, swamped) is left behind: this side closes the socket and
    runs the command itself, and the child that a continued server forks later finds no
    go and runs nothing.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(socket_path()))
        except OSError as exc:
            raise _NotServed from exc
        if _peer_stopped(client):
            raise _NotServed
        payload = json.dumps(request).encode()
        message = HEADER.pack(len(payload)) + payload
        fds, opened = _standard_fds()
        replies = client.makefile("rb")
        try:
            sent = socket.send_fds(client, [message], fds)
            client.sendall(message[sent:])
            client.settimeout(ACCEPT_TIMEOUT_S)
            accepted = _read_line(replies)
            if accepted is None or accepted.get("accepted") is not True:
                raise _NotServed  # declined, or gone before it began: nothing ran
            client.settimeout(None)
            client.sendall(GO)
        except OSError as exc:  # gone, or not accepting in time: nothing ran
            raise _NotServed from exc
        finally:
            for fd in opened:
                os.close(fd)
        return _read_line(replies)


def _peer_stopped(client: socket.socket) -> bool:
    """The server at the other end is stopped (SIGSTOP, a debugger): on Linux its state
    says so at once, instead of after ACCEPT_TIMEOUT_S."""
    if not hasattr(socket, "SO_PEERCRED"):
        return False
    creds = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid = struct.unpack("3i", creds)[0]
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def _standard_fds() -> tuple[list[int], list[int]]:
    """Descriptors 0, 1 and 2 to hand over; a closed one is replaced by /dev/null."""
    fds, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            fds.append(null)
            opened.append(null)
    return fds, opened


def _read_line(replies: BinaryIO) -> dict[str, object] | None:
    """One JSON line from the server; None if the connection closed first."""
    line = replies.readline()
    if not line.endswith(b"\n"):
        return None
    reply = json.loads(line)
    return reply if isinstance(reply, dict) else None
