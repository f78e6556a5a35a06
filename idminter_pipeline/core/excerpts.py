"""Readable excerpts of offending values, for error messages.

An error names the value it refuses, but never echoes it whole: a 10 MB input line must give a
one-line error, not 10 MB of it. `excerpt` shows the start of the value's `repr` and, when it
was cut, the full length, so the reader can still tell which value it was.
"""

from __future__ import annotations

DEFAULT_EXCERPT_LENGTH = 200


def excerpt(value: object, limit: int = DEFAULT_EXCERPT_LENGTH) -> str:
    """`repr(value)`, cut to `limit` characters; a cut one ends with its full length."""
    if isinstance(value, str | bytes | bytearray) and len(value) > limit:
        # Slice before repr so a huge value is never rendered whole.
        shown = repr(value[:limit])
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{shown}... ({len(value):,} {unit} in all)"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text):,} characters in all)"
    return text
