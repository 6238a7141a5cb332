"""The door for remote workers: TLS on a TCP port, forwarded to the server's private socket.

The bundled server listens on a unix socket only, and its binary is built without TLS, so
`promptspool serve --remote HOST:PORT` runs this small forwarder: it accepts TLS (1.2 or
newer) connections and pipes their bytes to the unix socket. The server still demands its
password from every connection, so a remote worker needs both: the certificate to trust
and the password. Nothing reaches the server in clear text over the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

log = logging.getLogger(__name__)

_CHUNK = 65536


class TlsError(RuntimeError):
    """The TLS door could not be opened (certificate, key or port); the message says why."""


@dataclass(frozen=True)
class RemoteDoor:
    """Where remote workers connect, and what they must trust."""

    host: str
    port: int
    cert: Path

    def worker_url(self, password: str) -> str:
        """The URL a remote worker uses (password included: keep it out of argv and logs)."""
        query = urlencode({"ssl_cert_reqs": "required", "ssl_ca_certs": self.cert}, safe="/")
        return f"rediss://:{quote(password, safe='')}@{self.host}:{self.port}/0?{query}"


def self_signed_certificate(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """cert.pem and key.pem in `folder` (made once with the openssl command; key 0600)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.is_file() and key.is_file():
        return cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError(
            "no `openssl` command to make a certificate; pass --tls-cert FILE --tls-key FILE"
        )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # private before use
    alt = ",".join(
        (f"IP:{name}" if _is_ip(name) else f"DNS:{name}") for name in dict.fromkeys(names)
    )
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "825", "-subj", "/CN=PromptSpool queue", "-keyout", str(key),
         "-out", str(cert), "-addext", f"subjectAltName={alt}"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        key.unlink(missing_ok=True)
        raise TlsError(f"openssl could not make a certificate: {done.stderr.strip()}")
    os.chmod(key, 0o600)
    return cert, key


def _is_ip(name: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name)
        except OSError:
            continue
        return True
    return False


class TlsForwarder:
    """Accepts TLS connections on (host, port) and pipes each to the unix socket.

    A connection must authenticate before it reaches the server for good: its first command
    must be AUTH (or HELLO with AUTH) within `auth_timeout_s` of connecting (the TLS
    handshake included), and the server must accept it; otherwise it is closed. At most
    `max_connections` are open at once. A stranger who finds the port can then hold none of
    the server's client slots for long.
    """

    def __init__(
        self,
        host: str,
        port: int,
        target: Path,
        cert: Path,
        key: Path,
        *,
        auth_timeout_s: float = 10.0,
        max_connections: int = 128,
    ) -> None:
        self.host = host
        self.port = port
        self.target = target
        self.auth_timeout_s = auth_timeout_s
        self.max_connections = max_connections
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot use certificate {cert} with key {key}: {exc}") from exc
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> tuple[str, int]:
        """Listen (port 0: any free port) and serve on a thread; returns the bound address."""
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(
                    self._accept,
                    self.host,
                    self.port,
                    ssl=self.context,
                    ssl_handshake_timeout=self.auth_timeout_s,
                )
            )
        except OSError as exc:
            self._loop.close()
            raise TlsError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        address = self._server.sockets[0].getsockname()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tls-forwarder", daemon=True
        )
        self._thread.start()
        log.info("remote workers: TLS on %s:%s", address[0], address[1])
        return str(address[0]), int(address[1])

    def stop(self) -> None:
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            log.warning("remote connection refused: %d are open already", len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        try:
            try:
                first = await asyncio.wait_for(reader.read(_CHUNK), self.auth_timeout_s)
            except (TimeoutError, OSError, ssl.SSLError):
                first = b""
            if not _is_auth(first):
                log.warning("remote connection closed: it did not authenticate first")
                return
            try:
                up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
            except OSError as exc:
                log.warning("remote worker connection dropped: the server is not up (%s)", exc)
                return
            up_writer.write(first)
            reply = await up_reader.read(_CHUNK)
            writer.write(reply)
            if not reply or reply.startswith(b"-"):  # the server refused the password
                log.warning("remote connection closed: its password was refused")
                up_writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.drain()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            writer.close()
            self._connections.discard(task)


def _is_auth(data: bytes) -> bool:
    """Whether the bytes begin with AUTH, or HELLO with AUTH (RESP or inline)."""
    if data.startswith(b"*"):
        parts = data.split(b"\r\n")
        words = [w.upper() for w in parts[2::2][:6]]  # the bulk strings after each $length
    else:
        words = [w.upper() for w in data.split(b"\r\n", 1)[0].split()[:6]]
    if not words:
        return False
    return words[0] == b"AUTH" or (words[0] == b"HELLO" and b"AUTH" in words[1:])


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            sink.close()
