"""Validation for people: an error as one short line, and a field's bounds for an input widget."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

UNKNOWN_FIELD = "unknown field"


def describe_validation_error(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One short line: the first error's field and reason, and how many more there are.

    An unknown field names the nearest field of its model, when one is close ("did you
    mean"); `model` is the model validated (default: the one the error is titled with).
    """
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    text = describe_error(first, model or _model_named(exc.title))
    if first["type"] == "missing":  # a required field misspelt: "modle" for "model"
        text += _misspelt_as(first["loc"], errors)
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return text


def describe_error(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    """One pydantic error as "field 'a.b[0]': reason" (the reason alone for the whole)."""
    loc = field_path(error.get("loc", ()))
    message = error_message(error, model)
    return f"field '{loc}': {message}" if loc else message


def error_message(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    """The reason alone; an unknown field's with the nearest known field, if any is close."""
    if error.get("type") == "extra_forbidden":
        return UNKNOWN_FIELD + unknown_field_hint(model, error.get("loc", ()))
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def unknown_field_hint(model: type[BaseModel] | None, loc: Sequence[Any]) -> str:
    """The hint for the unknown field at `loc` (a path from `model`, as pydantic gives it):
    "; did you mean 'temperature'?", or "" when no field of its model is close."""
    names = [str(part) for part in loc if not isinstance(part, int)]
    if model is None or not names:
        return ""
    current: type[BaseModel] | None = model
    for name in names[:-1]:  # down to the model the unknown field sits in
        current = _nested_model(current, name) if current is not None else None
    if current is None:
        return ""
    known = [info.alias or field for field, info in current.model_fields.items()]
    return f"; did you mean {near!r}?" if (near := nearest(names[-1], known)) else ""


def nearest(name: str, known: Sequence[str]) -> str | None:
    """The known name meant by a misspelt or shortened one ('temp' -> 'temperature'); of the
    close ones, the fewest edits away ('chatlm' -> 'chatml', not 'chatglm4')."""
    lowered = name.lower()
    starting = [k for k in known if len(lowered) >= 3 and k.lower().startswith(lowered)]
    if len(starting) == 1:
        return starting[0]
    near = difflib.get_close_matches(lowered, known, n=5, cutoff=0.6)
    return min(near, key=lambda k: _edits(lowered, k.lower()), default=None)


def _edits(a: str, b: str) -> int:
    """Edits from a to b: inserted, deleted or changed letters, or two swapped ones."""
    rows = [list(range(len(b) + 1))]
    for i, x in enumerate(a, start=1):
        row = [i]
        for j, y in enumerate(b, start=1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


def _misspelt_as(loc: Sequence[Any], errors: Sequence[Mapping[str, Any]]) -> str:
    """ "; did you misspell it as 'modle'?" when an unknown field beside the missing one at
    `loc` is close to its name."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    for error in errors:
        other = tuple(error["loc"])
        beside = bool(other) and other[:-1] == tuple(loc[:-1])
        if error["type"] == "extra_forbidden" and beside and nearest(str(other[-1]), [loc[-1]]):
            return f"; did you misspell it as {other[-1]!r}?"
    return ""


def field_path(loc: Sequence[Any]) -> str:
    """('messages', 0, 'role') -> 'messages[0].role'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def field_bounds(model: type[BaseModel], name: str) -> tuple[float, float]:
    """The lowest and highest value the model accepts for a numeric field.

    A strict bound (`gt`, `lt`) is given as itself: a widget whose step makes it reachable
    lets the model's own check refuse it, with the reason.
    """
    low, high = float("-inf"), float("inf")
    for item in model.model_fields[name].metadata:  # annotated_types' Ge, Gt, Le, Lt
        for attr in ("ge", "gt"):
            if (value := getattr(item, attr, None)) is not None:
                low = float(value)
        for attr in ("le", "lt"):
            if (value := getattr(item, attr, None)) is not None:
                high = float(value)
    return low, high


def _nested_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model a field holds (directly, in a list or dict, or as an optional one)."""
    for field, info in model.model_fields.items():
        if name in (field, info.alias):
            return next(_models_in(info.annotation), None)
    return None


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def _model_named(title: str) -> type[BaseModel] | None:
    """The one loaded model class of this name (a ValidationError names its model only)."""
    found: list[type[BaseModel]] = []
    stack: list[type[BaseModel]] = [BaseModel]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__name__ == title and sub not in found:
                found.append(sub)
    return found[0] if len(found) == 1 else None
