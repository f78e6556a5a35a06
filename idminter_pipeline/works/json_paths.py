"""Where a value sits in a decoded JSON document, and what JSON type it has: for error messages.

Neither runs on the way through a good document: they name what is wrong once something is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def json_type(value: object) -> str:  # noqa: PLR0911
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _children(value: Any, path: str) -> Iterator[tuple[Any, str]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield child, f"{path}.{key}" if path else key
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield child, f"{path}[{index}]"


def path_to(document: Any, target: Any) -> str:
    """The JSON path of the object `target` (by identity) inside `document`; '' for the root.

    Only for error messages: it builds a path for every value it passes, which extraction never
    does on its way through a good document.
    """
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if value is target:
            return path
        if isinstance(value, dict | list):
            stack.extend(reversed(list(_children(value, path))))
    return "?"
