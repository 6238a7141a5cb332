"""Prompt files and folders (drag and drop, CLI) turned into JobSpecs, or refused with a reason."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.files import NotRegularFile, kind_of, open_regular
from worker.jobs.batchfile import BatchFile, is_batch_file, read_if_batch
from worker.jobs.spec import JobSpec
from worker.jobs.validation import describe_validation_error

__all__ = [
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_FOLDERS",
    "MAX_LISTED",
    "SUPPORTED_SUFFIXES",
    "LoadResult",
    "PromptSource",
    "Refusal",
    "load_prompt_paths",
    "split_batch_files",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".prompt", ".json", ".jsonl")
MAX_FILE_BYTES = 8 * 1024 * 1024  # larger prompt files are refused
MAX_FILES = 10_000  # a drop/folder with more supported files is refused as a whole
MAX_FOLDERS = 10_000  # a folder holding more folders (followed links included) is too
MAX_LISTED = 20  # a refused file's bad lines (items) named one by one; the rest are counted

_TEXT_SUFFIXES = (".txt", ".md", ".prompt")
BATCH_FILE = (
    "an OpenAI batch file (custom_id, method, url, body lines): it becomes a batch of its own"
)
_TITLE_MAX = 200
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(frozen=True)
class Refusal:
    """A file or folder that queues nothing, and why: `reason` is one line (a file with
    several bad lines names the first and counts the others); `problems` then lists each
    bad line ("line 5: ...", at most MAX_LISTED, then "and N more bad lines")."""

    path: Path
    reason: str
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class PromptSource:
    """One accepted file and the specs it gave, in file order."""

    path: Path
    specs: tuple[JobSpec, ...]


@dataclass
class LoadResult:
    """Accepted files and refusals, in the order they were found."""

    sources: list[PromptSource]
    refused: list[Refusal]

    @property
    def specs(self) -> list[JobSpec]:
        """All accepted specs, in order."""
        return [spec for source in self.sources for spec in source.specs]


class _Refused(Exception):
    """Internal: the current file is refused with this reason (and these bad lines)."""

    def __init__(self, reason: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.problems = problems


def load_prompt_paths(paths: Iterable[Path | str], defaults: Mapping[str, Any]) -> LoadResult:
    """Load files and folders into specs; each path that cannot be used becomes a Refusal.

    `defaults` holds JobSpec fields applied under every spec (a JSON spec's own fields win).
    Folders are walked recursively in path order, skipping hidden entries and unsupported
    files; a folder with more than MAX_FILES supported files, or more than MAX_FOLDERS folders
    inside (a symlink to / is followed, but not for long), is refused as a whole. A file
    reached twice (e.g. dropped along with its folder) is loaded once. Text is UTF-8 (a BOM
    is stripped); a file starting with a UTF-16 BOM is decoded as UTF-16, since that is
    what the user's editor meant. The model file is not checked here.
    """
    result = LoadResult(sources=[], refused=[])
    seen: set[str] = set()
    for raw in paths:
        root = Path(raw)
        files, refusals = _collect(root)
        if len(files) > MAX_FILES:
            result.refused.append(
                Refusal(
                    root,
                    f"contains {len(files)} prompt files, more than "
                    f"the limit of {MAX_FILES}; nothing queued",
                )
            )
            continue
        result.refused.extend(refusals)
        for path in files:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            if is_batch_file(path):  # a batch, not prompts (see split_batch_files)
                if path == root:
                    result.refused.append(Refusal(path, BATCH_FILE))
                continue
            try:
                specs = _load_file(path, defaults)
            except _Refused as exc:
                result.refused.append(Refusal(path, str(exc), exc.problems))
            else:
                result.sources.append(PromptSource(path, specs))
    return result


def split_batch_files(paths: Iterable[Path]) -> tuple[list[BatchFile], list[Path]]:
    """The OpenAI batch files among `paths` and inside the folders among them (read), and
    the paths to load as prompt files (which skips the batch files in folders). A file
    that cannot be read stays with the prompt files, which refuse it with the reason."""
    batches: list[BatchFile] = []
    others: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> bool:
        real = os.path.realpath(path)
        if real in seen:
            return True
        data = read_if_batch(path)
        if data is None:
            return False
        seen.add(real)
        batches.append(BatchFile(path, data))
        return True

    for path in paths:
        if path.is_dir():
            files, _ = _collect(path)
            if len(files) <= MAX_FILES:
                for inside in files:
                    add(inside)
            others.append(path)
        elif not add(path):
            others.append(path)
    return batches, others


def _collect(root: Path) -> tuple[list[Path], list[Refusal]]:
    """The files to load for one given path (sorted for a folder) and refused folders."""
    try:
        info = root.stat()
    except OSError as exc:
        return [], [Refusal(root, _os_reason(exc))]
    if not stat.S_ISDIR(info.st_mode):
        if root.suffix.lower() not in SUPPORTED_SUFFIXES:
            return [], [Refusal(root, _unsupported(root))]
        return [root], []
    files: list[Path] = []
    refusals: list[Refusal] = []
    visited = {os.path.realpath(root)}
    stack = [root]
    while stack:
        if len(visited) > MAX_FOLDERS:  # a link to / (or to a whole disk): do not walk it all
            reason = (
                f"holds more than {MAX_FOLDERS} folders (a link to / or to a whole disk?); "
                "stopped looking, nothing queued"
            )
            return [], [Refusal(root, reason)]
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listing = list(entries)
        except OSError as exc:
            refusals.append(Refusal(folder, _os_reason(exc)))
            continue
        for entry in listing:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(path)
                if real not in visited:  # symlink loops and repeats end here
                    visited.add(real)
                    stack.append(path)
            elif Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(path)
    files.sort()
    return files, refusals


def _load_file(path: Path, defaults: Mapping[str, Any]) -> tuple[JobSpec, ...]:
    text = _read_text(path)
    if not text.strip():
        raise _Refused("empty prompt file")
    suffix = path.suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return (_build(defaults, {"prompt": text}, _title(path.name)),)
    if suffix == ".json":
        value = _parse_json(text)
        if not isinstance(value, list):
            return (_build_json(value, defaults, _title(path.name)),)
        if not value:
            raise _Refused("the JSON list is empty: no prompts in it")
        several = len(value) > 1
        items = [
            (f"item {n}: " if several else "", _title(path.name, n if several else None), item)
            for n, item in enumerate(value, start=1)
        ]
        return _build_each(items, defaults, "item")
    # JSON lines: each line is parsed and validated on its own, and every bad one is named.
    lines = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    several = len(lines) > 1
    entries = [
        (f"line {n}: ", _title(path.name, index if several else None), _Line(line))
        for index, (n, line) in enumerate(lines, start=1)
    ]
    return _build_each(entries, defaults, "line")


@dataclass(frozen=True)
class _Line:
    """One line of a JSONL file, not parsed yet."""

    text: str


def _build_each(
    entries: list[tuple[str, str, Any]], defaults: Mapping[str, Any], unit: str
) -> tuple[JobSpec, ...]:
    """A spec from each (label, title, JSON value or _Line), or _Refused naming every bad
    one (the first MAX_LISTED, then how many more): the file is queued whole or not at all."""
    specs: list[JobSpec] = []
    bad: list[str] = []
    count = 0
    for label, title, entry in entries:
        try:
            value = _parse_json(entry.text, True) if isinstance(entry, _Line) else entry
            specs.append(_build_json(value, defaults, title))
        except _Refused as exc:
            count += 1
            if len(bad) < MAX_LISTED:
                bad.append(f"{label}{exc}")
    if count == 0:
        return tuple(specs)
    if count == 1:
        raise _Refused(bad[0])
    if count > len(bad):
        more = count - len(bad)
        bad.append(f"and {more} more bad {unit}{'s' if more != 1 else ''}")
    others = count - 1
    reason = f"{bad[0]} (and {others} more bad {unit}{'s' if others != 1 else ''})"
    raise _Refused(reason, tuple(bad))


def _read_text(path: Path) -> str:
    """The decoded file, or _Refused naming why it cannot be used as text."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(f"not a regular file ({kind_of(info.st_mode)})")
        if info.st_size > MAX_FILE_BYTES:
            raise _Refused(_too_large(info.st_size))
        with open_regular(path) as handle:  # never blocks, even if it became a FIFO since
            data = handle.read(MAX_FILE_BYTES + 1)
    except NotRegularFile as exc:
        raise _Refused("not a regular file") from exc
    except OSError as exc:
        raise _Refused(_os_reason(exc)) from exc
    if len(data) > MAX_FILE_BYTES:
        raise _Refused(_too_large(len(data)))
    if data.startswith(_UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise _Refused(f"not UTF-16 text (invalid data at offset {exc.start})") from exc
    else:
        if b"\x00" in data:
            raise _Refused("contains NUL bytes; looks like a binary file, not text")
        bom = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
        try:
            text = data[bom:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(f"not UTF-8 text (invalid byte at offset {exc.start + bom})") from exc
    if "\x00" in text:
        raise _Refused("contains NUL characters; looks like a binary file, not text")
    return text


def _parse_json(text: str, single_line: bool = False) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_object_without_repeats)
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}" if single_line else f"line {exc.lineno}, column {exc.colno}"
        raise _Refused(f"invalid JSON at {where}: {exc.msg}") from exc
    except RecursionError as exc:
        raise _Refused("invalid JSON: nested too deeply") from exc
    except _Refused:
        raise
    except ValueError as exc:  # an integer with more digits than Python converts
        if "integer string conversion" in str(exc):
            raise _Refused("invalid JSON: a number with more than 4300 digits") from exc
        raise _Refused(f"invalid JSON: {exc}") from exc


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key appears twice (JSON would silently keep the last)."""
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _Refused(f"the key {key!r} appears twice in one object")
        value[key] = item
    return value


def _build_json(value: Any, defaults: Mapping[str, Any], title: str) -> JobSpec:
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), type(value).__name__)
        raise _Refused(f"expected a JSON object (a job spec), got {kind}")
    return _build(defaults, value, title)


def _build(defaults: Mapping[str, Any], fields: Mapping[str, Any], title: str) -> JobSpec:
    try:
        return JobSpec.model_validate({**defaults, "title": title, **fields})
    except ValidationError as exc:
        raise _Refused(describe_validation_error(exc)) from exc


def _title(name: str, number: int | None = None) -> str:
    # A file name that is not UTF-8 arrives with surrogate escapes; show its bytes as text.
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    tail = f"#{number}" if number is not None else ""
    if len(name) + len(tail) > _TITLE_MAX:
        name = name[: _TITLE_MAX - len(tail) - 1] + "…"
    return name + tail


def _too_large(size: int | None) -> str:
    amount = f"{size} bytes" if size is not None else f"over {MAX_FILE_BYTES} bytes"
    return f"file too large ({amount}; the limit is {MAX_FILE_BYTES} bytes)"


def _unsupported(path: Path) -> str:
    kind = f"'{path.suffix}'" if path.suffix else "(no extension)"
    return f"unsupported file type {kind}; use .txt, .md, .prompt, .json or .jsonl"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied"
    return f"cannot be read: {exc.strerror or exc}"
