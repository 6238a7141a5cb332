"""A fake Hugging Face Hub on loopback that huggingface_hub's own client can talk to."""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from worker.testing.tinymodel import write_tiny_llama

LAST_MODIFIED = "2025-01-02T03:04:05.000Z"


def tiny_gguf(seed: int = 0) -> bytes:
    """The bytes of a tiny random-weight Llama GGUF (a few hundred KB)."""
    with tempfile.TemporaryDirectory(prefix="fakehub-") as folder:
        return write_tiny_llama(Path(folder) / "tiny.gguf", seed=seed).read_bytes()


@dataclass
class FakeRepo:
    """A model repository: its files (name -> bytes, all served as LFS files) and its card."""

    repo_id: str
    files: dict[str, bytes]
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    tags: tuple[str, ...] = ("gguf",)

    @property
    def commit(self) -> str:
        return hashlib.sha1(f"commit:{self.repo_id}".encode()).hexdigest()

    def sha256(self, filename: str) -> str:
        return hashlib.sha256(self.files[filename]).hexdigest()

    def summary(self, expand: list[str] | None = None) -> dict[str, Any]:
        card: dict[str, Any] = {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.commit,
            "lastModified": LAST_MODIFIED,
            "createdAt": LAST_MODIFIED,
            "private": False,
            "gated": "manual" if self.gated else False,
            "disabled": False,
            "downloads": self.downloads,
            "likes": self.likes,
            "tags": list(self.tags),
            "library_name": "gguf",
        }
        if expand:
            card = {k: v for k, v in card.items() if k in {"_id", "id", *expand}}
        return card

    def info(self, blobs: bool) -> dict[str, Any]:
        siblings: list[dict[str, Any]] = []
        for name, data in sorted(self.files.items()):
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                sibling["size"] = len(data)
                sibling["blobId"] = hashlib.sha1(f"pointer:{name}".encode()).hexdigest()
                sibling["lfs"] = {
                    "size": len(data),
                    "sha256": self.sha256(name),
                    "pointerSize": 134,
                }
            siblings.append(sibling)
        return {**self.summary(), "siblings": siblings}

    def tree(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "file",
                "path": name,
                "size": len(data),
                "oid": hashlib.sha1(f"pointer:{name}".encode()).hexdigest(),
                "lfs": {"oid": self.sha256(name), "size": len(data), "pointerSize": 134},
            }
            for name, data in sorted(self.files.items())
        ]


@dataclass(frozen=True)
class Served:
    """One request the fake Hub answered."""

    method: str
    path: str
    range: str | None
    authorization: str | None
    status: int


@dataclass
class FakeHub:
    """A Hub in a thread: `/api/models` (search), `/api/models/{repo}[/revision/{rev}]` (info,
    `?blobs=True` for sizes and LFS sha256), `/api/models/{repo}/tree/{rev}` and HEAD/GET
    `/{repo}/resolve/{rev}/{file}` with the headers huggingface_hub reads (X-Repo-Commit,
    X-Linked-Etag, X-Linked-Size, Accept-Ranges; `Range` honoured). No Xet headers, so the
    client always downloads over plain HTTP.

    Knobs: `tokens` accepted for gated repos, `drop_after[file]` = bytes after which the next
    body of that file is cut off (once), `corrupt` = files served with a flipped byte (their
    headers keep the true sha256), `rate` = body bytes per second. `requests` records what
    was asked.
    """

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    drop_after: dict[str, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    rate: int | None = None
    requests: list[Served] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes],
        *,
        downloads: int = 0,
        likes: int = 0,
        gated: bool = False,
        tags: Iterable[str] = ("gguf",),
    ) -> FakeRepo:
        repo = FakeRepo(repo_id, dict(files), downloads, likes, gated, tuple(tags))
        self.repos[repo_id] = repo
        return repo

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake Hub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def served(self, filename: str | None = None, method: str | None = None) -> list[Served]:
        """The requests so far, optionally only those for one file (by its name) or method."""
        with self._lock:
            found = list(self.requests)
        if filename is not None:
            found = [r for r in found if "/resolve/" in r.path and r.path.endswith("/" + filename)]
        if method is not None:
            found = [r for r in found if r.method == method]
        return found

    def _record(self, served: Served) -> None:
        with self._lock:
            self.requests.append(served)

    def _take_drop(self, filename: str) -> int | None:
        with self._lock:
            return self.drop_after.pop(filename, None)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    # -- routing ------------------------------------------------------------------------

    def _dispatch(self, body: bool) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        routes: list[tuple[Callable[[list[str]], bool], Callable[[], None]]] = [
            (lambda p: p == ["api", "models"], lambda: self._search(query)),
            (
                lambda p: len(p) >= 4 and p[:2] == ["api", "models"],
                lambda: self._api_repo(parts[2:], query),
            ),
            (
                lambda p: len(p) >= 5 and p[2] == "resolve",
                lambda: self._resolve(parts, body),
            ),
        ]
        for matches, answer in routes:
            if matches(parts):
                answer()
                return
        self._error(404, "NotFound", f"no route for {split.path}")

    def _search(self, query: dict[str, list[str]]) -> None:
        wanted = query.get("filter", [])
        text = query.get("search", [""])[0].lower()
        repos = [
            r
            for r in self.hub.repos.values()
            if all(f in r.tags for f in wanted) and text in r.repo_id.lower()
        ]
        key = query.get("sort", ["downloads"])[0]
        sort_keys: dict[str, Callable[[FakeRepo], Any]] = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
        }
        if key in sort_keys:
            repos.sort(key=sort_keys[key], reverse=True)
        if "limit" in query:
            repos = repos[: int(query["limit"][0])]
        expand = query.get("expand")
        self._json([r.summary(expand) for r in repos])

    def _api_repo(self, rest: list[str], query: dict[str, list[str]]) -> None:
        repo = self.hub.repos.get("/".join(rest[:2]))
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        tail = rest[2:]
        if tail and tail[0] in ("revision", "tree") and len(tail) >= 2:
            if tail[1] not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {tail[1]}")
                return
            if tail[0] == "tree":
                self._json(repo.tree())
                return
        elif tail:
            self._error(404, "NotFound", "unknown API path")
            return
        self._json(repo.info(blobs="blobs" in query))

    def _resolve(self, parts: list[str], body: bool) -> None:
        repo = self.hub.repos.get("/".join(parts[:2]))
        revision, filename = parts[3], "/".join(parts[4:])
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", body=body)
            return
        if repo.gated:
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("Bearer "):
                self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it"
                    " and be authenticated to access it. Please log in.",
                    body=body,
                )
                return
            if auth.removeprefix("Bearer ") not in self.hub.tokens:
                self._error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted and you are not in the"
                    " authorized list.",
                    body=body,
                )
                return
        if revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body=body)
            return
        if filename not in repo.files:
            self._error(404, "EntryNotFound", "Entry not found", body=body, commit=repo.commit)
            return
        self._file(repo, filename, body)

    # -- answers ------------------------------------------------------------------------

    def _file(self, repo: FakeRepo, filename: str, body: bool) -> None:
        data = repo.files[filename]
        sha = repo.sha256(filename)
        if body and filename in self.hub.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        size = len(data)
        start, end = 0, size - 1
        ranged = self.headers.get("Range")
        if ranged:
            first, _, last = ranged.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
            if start >= size:
                self._record(416)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        status = 206 if ranged else 200
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(size))
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self._send_body(data[start : end + 1], self.hub._take_drop(filename))

    def _send_body(self, data: bytes, drop: int | None) -> None:
        rate = self.hub.rate
        step = max(1024, rate // 20) if rate else 64 * 1024
        sent = 0
        try:
            while sent < len(data) and not self.hub._closing.is_set():
                if drop is not None and sent >= drop:
                    self.close_connection = True  # cut off: fewer bytes than Content-Length
                    return
                piece = data[sent : sent + step]
                if drop is not None:
                    piece = piece[: drop - sent]
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                if rate:
                    time.sleep(len(piece) / rate)  # the throttle itself: a slow link
        except OSError:
            self.close_connection = True  # the client went away (a cancelled download)

    def _json(self, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(
        self, status: int, code: str, message: str, *, body: bool = True, commit: str | None = None
    ) -> None:
        raw = json.dumps({"error": message}).encode()
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if body:
            self.wfile.write(raw)

    def _record(self, status: int) -> None:
        self.hub._record(
            Served(
                self.command,
                urlsplit(self.path).path,
                self.headers.get("Range"),
                self.headers.get("Authorization"),
                status,
            )
        )
