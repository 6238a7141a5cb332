"""Validation for people: an error as one short line, and a field's bounds for an input widget."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError


def describe_validation_error(exc: ValidationError) -> str:
    """One short line: the first error's field and reason, and how many more there are."""
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    loc = ""
    for part in first["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else f".{part}" if loc else str(part)
    text = f"field '{loc}': {message}" if loc else message
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
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
