"""EventBridge Pipes input templates, rendered as the Pipes documentation describes them
("Amazon EventBridge Pipes input transformation"), to check what the minter will receive.

- `<$.a.b>` is a JSON path into the source event (dot notation and array indices, the syntax
  Pipes supports); `<aws.pipes.pipe-name>` and the other reserved variables come from the pipe.
- Implicit body parsing: an SQS record's `body` that holds valid JSON is parsed first, so paths
  can reach into it (`<$.body.Message>`).
- A variable inside quotes is a string: its value is inserted JSON-escaped. A variable without
  quotes is inserted as JSON (objects, arrays, numbers).
- With a batch, the target receives a JSON array: the template applied to each record.
"""

from __future__ import annotations

import json
import re
from typing import Any

_VARIABLE = re.compile(r'("?)<((?:\$|aws\.pipes\.)[^<>]*)>("?)')
_STEP = re.compile(r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]")


class UnresolvedPathError(KeyError):
    pass


def _parsed_body(record: dict[str, Any]) -> dict[str, Any]:
    body = record.get("body")
    if isinstance(body, str):
        try:
            return {**record, "body": json.loads(body)}
        except json.JSONDecodeError:
            return record
    return record


def _resolve(path: str, event: Any) -> Any:
    position, value = 1, event
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            raise ValueError(f"unsupported JSON path syntax in {path!r}")
        key, index = step.groups()
        try:
            value = value[key] if key is not None else value[int(index)]
        except (KeyError, IndexError, TypeError) as error:
            raise UnresolvedPathError(path) from error
        position = step.end()
    return value


def render(template: str, record: dict[str, Any], reserved: dict[str, str]) -> Any:
    """The event the target receives for one record."""
    event = _parsed_body(record)

    def substitute(match: re.Match[str]) -> str:
        opening, variable, closing = match.groups()
        if variable.startswith("aws.pipes."):
            value: Any = reserved[variable]
        else:
            value = _resolve(variable, event)
        if opening and closing:
            text = value if isinstance(value, str) else json.dumps(value)
            return json.dumps(text)
        return opening + json.dumps(value) + closing

    return json.loads(_VARIABLE.sub(substitute, template))


def render_batch(template: str, records: list[dict[str, Any]], reserved: dict[str, str]) -> list:
    return [render(template, record, reserved) for record in records]
