"""Where a value sits in a decoded JSON document, for error messages (its JSON type:
`core.strict_json.json_type`).

Nothing here runs on the way through a good document: it names where something is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


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
