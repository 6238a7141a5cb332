"""Where a job's model runs: a local GGUF file, or `NAME/MODEL` on a remote endpoint."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from worker.modelfile.check import check_model_file

ENDPOINT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENDPOINT_NAME = re.compile(ENDPOINT_NAME_PATTERN)


@dataclass(frozen=True)
class RemoteTarget:
    """`lab/qwen2.5-7b`: the model `qwen2.5-7b` of the endpoint named `lab`."""

    endpoint: str
    model: str

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.model}"


def remote_target(model: str) -> RemoteTarget | None:
    """The endpoint and model that `model` names, or None for a local model file.

    A queued job's local model is always an absolute path (it is resolved when the job is
    queued), so a relative name whose first part could be an endpoint's name is remote.
    Which names are endpoints is the settings' business: see Settings.resolve_model.
    """
    if _is_absolute(model):
        return None
    name, sep, rest = model.partition("/")
    if not sep or not rest.strip() or not _ENDPOINT_NAME.match(name):
        return None
    return RemoteTarget(name, rest)


def _is_absolute(model: str) -> bool:
    paths: tuple[PurePath, ...] = (PurePosixPath(model), PureWindowsPath(model))
    return model.startswith("~") or any(path.is_absolute() for path in paths)


def check_model(model: str, endpoints: Collection[str], *, deep: bool = False) -> str:
    """A job's model as it is queued: `NAME/MODEL` when NAME is one of `endpoints`, else a
    sound GGUF file's resolved path; ValueError naming the model and the reason (for a name
    that looks remote but is neither an endpoint's nor a file, both are said)."""
    target = remote_target(model)
    if target is not None and target.endpoint in endpoints:
        return model
    try:
        return str(check_model_file(model, deep=deep))
    except ValueError as exc:
        if target is None or Path(model).expanduser().exists():
            raise
        known = ", ".join(sorted(endpoints)) or "none are configured"
        raise ValueError(
            f"{exc}; nor is {target.endpoint!r} a remote endpoint (endpoints: {known})"
        ) from None
