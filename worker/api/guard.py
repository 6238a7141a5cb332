"""Who may talk to the API: where it listens, which Host it answers to, and the bearer token."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class BindRefused(ValueError):
    """The settings would expose the API in a way that needs an explicit choice first."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> bool:
    """Whether the API serves TLS; BindRefused (saying what to set) when the settings would
    put plain HTTP on the network without the user asking for it."""
    cert, key = settings.http_tls_cert, settings.http_tls_key
    if (cert is None) != (key is None):
        raise BindRefused("set both http_tls_cert and http_tls_key, or neither")
    tls = cert is not None
    if not tls and not is_loopback(settings.http_host) and not settings.http_insecure:
        raise BindRefused(
            f"the HTTP API would listen on {settings.http_host} without TLS, where anyone on "
            "the network can read the token; set http_tls_cert and http_tls_key "
            "(PROMPTSPOOL_HTTP_TLS_CERT/KEY), or PROMPTSPOOL_HTTP_INSECURE=1 to serve plain "
            "HTTP anyway"
        )
    return tls


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The Host names the API answers to: its own address, and the configured extras. A bind
    to every interface also answers to this machine's names."""
    host = settings.http_host.strip("[]").lower()
    names = {host, *LOOPBACK_NAMES, *(h.lower() for h in settings.http_allowed_hosts)}
    if host in ("0.0.0.0", "::"):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def host_of(header: str) -> str:
    """The host part of a Host header: 'a:80' -> 'a', '[::1]:80' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class HostGuard:
    """Refuses (421) a request whose Host header is not one the API serves: a web page whose
    DNS name was re-pointed at 127.0.0.1 (DNS rebinding) cannot reach the queue."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host", "")
        if host_of(header) in self.hosts:
            await self.app(scope, receive, send)
            return
        message = f"this server does not answer to Host {header!r}"
        error = {"message": message, "type": "invalid_request_error", "param": "Host",
                 "code": "host_not_allowed"}  # fmt: skip
        body = (
            {"error": error}
            if str(scope.get("path", "")).startswith("/v1/")
            else {"detail": message}
        )
        await JSONResponse(body, status_code=421)(scope, receive, send)
