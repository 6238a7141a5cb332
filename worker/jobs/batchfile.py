"""OpenAI batch files (JSONL): each line checked on its own, every bad line named with its field."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.files import NotRegularFile, open_regular
from worker.jobs.job import JobOrigin
from worker.jobs.spec import JobSpec

MAX_REQUESTS = 50_000  # as OpenAI: a batch holds at most this many requests
MAX_ERRORS = 1000  # a file with more bad lines is not checked further
MAX_CUSTOM_ID = 512
LINE_FIELDS = ("custom_id", "method", "url", "body")
_UTF8_BOM = b"\xef\xbb\xbf"
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}  # fmt: skip


@dataclass(frozen=True)
class LineError:
    """One thing wrong with a batch file: its line (None: the file as a whole), the field,
    the reason, and OpenAI's error code."""

    line: int | None
    param: str | None
    message: str
    code: str

    def as_dict(self) -> dict[str, Any]:
        """As an entry of a batch's `errors.data` (OpenAI's BatchError)."""
        return {"code": self.code, "message": self.message, "param": self.param,
                "line": self.line}  # fmt: skip

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "the file"
        field_name = f" field '{self.param}'" if self.param else ""
        return f"{where}{field_name}: {self.message}"


@dataclass(frozen=True)
class BatchRequest:
    """One good line: the job it asks for and the origin its answer is owed to."""

    line: int
    custom_id: str
    url: str
    spec: JobSpec
    origin: JobOrigin


@dataclass
class BatchPlan:
    """What a batch file would queue (every line good) or why it queues nothing."""

    requests: list[BatchRequest] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _LineRefused(Exception):
    def __init__(self, error: LineError) -> None:
        super().__init__(error.message)
        self.error = error


def first_line_is_batch(data: bytes) -> bool:
    """Whether the first non-blank line is an OpenAI batch line (it has custom_id and url):
    how a JSONL file given to `submit` is told apart from a file of job specs."""
    for raw in data.removeprefix(_UTF8_BOM).split(b"\n", 1000):
        if raw.strip():
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):
                return False
            return isinstance(value, dict) and "custom_id" in value and "url" in value
    return False


def read_batch(
    data: bytes,
    *,
    endpoint: str | None,
    defaults: Mapping[str, Any],
    resolve_model: Callable[[str], str | Path],
) -> BatchPlan:
    """Check every line of a batch file (UTF-8 JSONL; blank lines are skipped).

    A line is `{"custom_id", "method": "POST", "url", "body"}`; `url` must be `endpoint`
    (None: the first line's url, which every other line must then share) and `body` a valid
    request of that endpoint (see openai_shape). Every bad line is named, up to MAX_ERRORS.
    """
    plan = BatchPlan()
    resolve = _memo(resolve_model)
    lines_seen: dict[str, int] = {}
    wanted = endpoint
    count = 0
    for number, raw in enumerate(data.removeprefix(_UTF8_BOM).split(b"\n"), start=1):
        if not raw.strip():
            continue
        count += 1
        if count > MAX_REQUESTS:
            plan.errors.append(LineError(number, None, f"more than {MAX_REQUESTS} requests; "
                                         "split the file into several batches",
                                         "too_many_requests"))  # fmt: skip
            break
        try:
            request = _read_line(number, raw, wanted, lines_seen, defaults, resolve)
        except _LineRefused as exc:
            plan.errors.append(exc.error)
            if len(plan.errors) >= MAX_ERRORS:
                plan.errors.append(LineError(None, None, f"more than {MAX_ERRORS} bad lines; "
                                             f"stopped checking at line {number}",
                                             "too_many_errors"))  # fmt: skip
                break
            continue
        wanted = wanted or request.url
        plan.requests.append(request)
    if count == 0:
        plan.errors.append(LineError(None, None, "the file holds no requests", "empty_file"))
    return plan


def _read_line(
    number: int,
    raw: bytes,
    endpoint: str | None,
    lines_seen: dict[str, int],
    defaults: Mapping[str, Any],
    resolve_model: Callable[[str], str | Path],
) -> BatchRequest:
    # The request shapes (pydantic models) are built on first use: a command that only asks
    # whether a file is a batch (`submit`) does not build them.
    from worker.jobs.openai_shape import ENDPOINTS, RequestRefused, spec_from_request

    def refuse(param: str | None, message: str, code: str = "invalid_value") -> _LineRefused:
        return _LineRefused(LineError(number, param, message, code))

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(None, f"not UTF-8 text (invalid byte at column {exc.start + 1})",
                     "invalid_encoding") from exc  # fmt: skip
    value = _parse(text, refuse)
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), type(value).__name__)
        raise refuse(None, f"expected a JSON object (a request), got {kind}", "invalid_json")
    for name in value:
        if name not in LINE_FIELDS:
            raise refuse(name, f"unknown field (a line has {', '.join(LINE_FIELDS)})",
                         "unknown_parameter")  # fmt: skip
    for name in LINE_FIELDS:
        if name not in value:
            raise refuse(name, "missing", "missing_required_parameter")
    custom_id = value["custom_id"]
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise refuse("custom_id", "must be a non-empty string")
    if len(custom_id) > MAX_CUSTOM_ID:
        raise refuse("custom_id", f"longer than {MAX_CUSTOM_ID} characters")
    if custom_id in lines_seen:
        first = lines_seen[custom_id]
        message = f"{custom_id!r} is also the custom_id of line {first}; each must be unique"
        raise refuse("custom_id", message, "duplicate_custom_id")
    lines_seen[custom_id] = number
    if value["method"] != "POST":
        raise refuse("method", f'{_show(value["method"])} is not supported (only "POST")')
    url = value["url"]
    if url not in ENDPOINTS:
        raise refuse("url", f"{_show(url)} is not one of {', '.join(ENDPOINTS)}", "invalid_url")
    if endpoint is not None and url != endpoint:
        message = f"{url} is not the batch's endpoint {endpoint} (one endpoint a batch)"
        raise refuse("url", message, "mismatched_endpoint")
    body = value["body"]
    if not isinstance(body, dict):
        kind = _JSON_TYPES.get(type(body), type(body).__name__)
        raise refuse("body", f"expected a JSON object (the request), got {kind}")
    try:
        spec, origin = spec_from_request(url, body, defaults=defaults,
                                         resolve_model=resolve_model, via="batch")  # fmt: skip
    except RequestRefused as exc:
        param = f"body.{exc.param}" if exc.param else "body"
        message = exc.message.removeprefix(f"{exc.param}: ") if exc.param else exc.message
        raise refuse(param, message, exc.code) from exc
    return BatchRequest(number, custom_id, url, spec, origin)


def _parse(text: str, refuse: Callable[..., _LineRefused]) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_repeats)
    except _Repeated as exc:
        raise refuse(None, f"the key {exc.key!r} appears twice in one object",
                     "invalid_json") from exc  # fmt: skip
    except json.JSONDecodeError as exc:
        raise refuse(None, f"invalid JSON at column {exc.colno}: {exc.msg}",
                     "invalid_json") from exc  # fmt: skip
    except (ValueError, RecursionError) as exc:  # nested too deeply, a number too long
        raise refuse(None, f"invalid JSON: {exc}", "invalid_json") from exc


class _Repeated(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _Repeated(key)
        value[key] = item
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


def _memo(resolve_model: Callable[[str], str | Path]) -> Callable[[str], str | Path]:
    """The resolver with each name looked up once (it lists the model folders every time)."""
    known: dict[str, str | Path | LookupError] = {}

    def resolve(name: str) -> str | Path:
        if name not in known:
            try:
                known[name] = resolve_model(name)
            except LookupError as exc:
                known[name] = exc
        found = known[name]
        if isinstance(found, LookupError):
            raise found
        return found

    return resolve


FIRST_LINE_BYTES = 16 * 1024 * 1024  # a first line longer than this is no batch line


@dataclass(frozen=True)
class BatchFile:
    """An OpenAI batch file given by name (to `submit`, or dropped on the window), read."""

    path: Path
    data: bytes


def is_batch_file(path: Path) -> bool:
    """Whether the file is an OpenAI batch file: a .jsonl whose first non-blank line is a
    batch line (custom_id, url). Reads that line only; False for what cannot be read."""
    return path.suffix.lower() == ".jsonl" and _first_line(path) is not None


def read_if_batch(path: Path) -> bytes | None:
    """The whole file if it is an OpenAI batch file, else None."""
    if not is_batch_file(path):
        return None
    try:
        with open_regular(path) as handle:
            return handle.read()
    except (NotRegularFile, OSError):
        return None


def _first_line(path: Path) -> bytes | None:
    """The first non-blank line when it is a batch line, else None."""
    try:
        with open_regular(path) as handle:
            first = handle.readline(FIRST_LINE_BYTES)
            while first and not first.strip():
                first = handle.readline(FIRST_LINE_BYTES)
    except (NotRegularFile, OSError):
        return None
    return first if first_line_is_batch(first) else None
