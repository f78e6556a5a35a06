"""JSON read from users, parsed without silently changing anything.

The standard library accepts things this project must refuse, because each would silently change
what the user meant or crash with a traceback:

- duplicate keys (`{"predecessor": "...", "predecessor": null}`): the last one wins;
- `NaN`, `Infinity` and `-Infinity`, which are not JSON, and numbers like `1e999` that would
  become infinity;
- integers too long to convert (Python refuses over 4,300 digits with a bare `ValueError`);
- nesting deep enough to exhaust the interpreter's stack (`RecursionError`).

`loads` refuses each of them with `InvalidJsonError`, whose message names the problem and an
excerpt of the offending text, never the whole of it.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.excerpts import excerpt

# Deeper than any catalogue document or request (work documents nest about a dozen levels); far
# below the depth at which the parser would exhaust the interpreter's stack.
DEFAULT_MAX_DEPTH = 100
# Catalogue JSON never needs longer integers; the interpreter refuses over 4,300 digits anyway.
MAX_INTEGER_DIGITS = 100


class InvalidJsonError(InvalidInputError):
    """Text that is not JSON this project accepts. `reason` says why, `text` is the input."""

    def __init__(self, text: str | bytes, reason: str, *, what: str = "input") -> None:
        self.text = text
        self.reason = reason
        self.what = what
        super().__init__(f"{what} is not valid JSON ({reason}): {excerpt(text)}")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise _NonStandardConstantError(name)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NonStandardConstantError(f"{text} (beyond the range of a double)")
    return value


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _LongIntegerError(digits)
    return int(digits)


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _NonStandardConstantError(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class _LongIntegerError(Exception):
    def __init__(self, digits: str) -> None:
        self.digits = digits


_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_depth_exceeds(text: str | bytes, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than `max_depth`, found without recursion."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", errors="replace")
    # A text with no more opening brackets than the bound cannot nest deeper than it.
    if text.count("[") + text.count("{") <= max_depth:
        return False
    brackets = _BRACKET.findall(_STRING_LITERAL.sub("", text))
    return max(accumulate(_DEPTH_STEP[b] for b in brackets), default=0) > max_depth


def loads(text: str | bytes, *, what: str = "input", max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse `text` as JSON, refusing what the standard parser would silently accept or crash on.

    `what` names the input in the error (`"line 3"`, `"the event"`).
    """
    if nesting_depth_exceeds(text, max_depth):
        raise InvalidJsonError(text, f"nested deeper than {max_depth} levels", what=what)
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except _DuplicateKeyError as error:
        raise InvalidJsonError(text, f"duplicate key {excerpt(error.key, 80)}", what=what) from None
    except _NonStandardConstantError as error:
        raise InvalidJsonError(text, f"{error.name} is not a JSON value", what=what) from None
    except _LongIntegerError as error:
        raise InvalidJsonError(
            text,
            f"an integer of {len(error.digits):,} digits; at most {MAX_INTEGER_DIGITS} are "
            "accepted",
            what=what,
        ) from None
    except json.JSONDecodeError as error:
        raise InvalidJsonError(
            text, f"{error.msg} at line {error.lineno} column {error.colno}", what=what
        ) from None
    except UnicodeDecodeError as error:
        raise InvalidJsonError(
            text, f"not UTF-8 ({excerpt(error.object[error.start : error.end])})", what=what
        ) from None
    except RecursionError:  # pragma: no cover - the depth check refuses such input first
        raise InvalidJsonError(text, "nested too deeply", what=what) from None


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
