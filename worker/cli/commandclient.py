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
    (no server, or one that declined before running anything)."""
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
    if "retry" in reply:  # it ran nothing: run here
        return None
    code = reply.get("exit")
    return code if isinstance(code, int) else EXIT_FAILED


class _NotServed(Exception):
    """No server took the request: nothing ran."""


def _exchange(request: dict[str, object]) -> dict[str, object] | None:
    """Send the request with descriptors 0-2; the reply, or None if the server went away
    after taking it (the command may have run in part)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(socket_path()))
        except OSError as exc:
            raise _NotServed from exc
        payload = json.dumps(request).encode()
        message = HEADER.pack(len(payload)) + payload
        fds, opened = _standard_fds()
        try:
            sent = socket.send_fds(client, [message], fds)
            client.sendall(message[sent:])
        except OSError as exc:  # it went away before reading it whole: nothing ran
            raise _NotServed from exc
        finally:
            for fd in opened:
                os.close(fd)
        return _read_reply(client)


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


def _read_reply(client: socket.socket) -> dict[str, object] | None:
    """The server's one-line JSON reply; None if the connection closed without one."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(4096)
        if not chunk:
            return None
        data += chunk
    reply = json.loads(data)
    return reply if isinstance(reply, dict) else None
