"""The public canonical ID format: 8 characters, unambiguous when read aloud or written down.

The first character is a letter (XML identifiers cannot start with a digit); the rest may also be
digits 2-9. `o`, `i`, `l` and `1` are excluded because they are easily confused with `0`, `1`,
`I` and `l`. That leaves 23 letters and 31 symbols: 23 * 31**7, about 633 billion IDs.
"""

from __future__ import annotations

import os
import re

from idminter_pipeline.core.errors import InvalidCanonicalIdError

CANONICAL_ID_LENGTH = 8
FIRST_CHARACTERS = "".join(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in "oil")
OTHER_CHARACTERS = FIRST_CHARACTERS + "23456789"
ID_SPACE_SIZE = len(FIRST_CHARACTERS) * len(OTHER_CHARACTERS) ** (CANONICAL_ID_LENGTH - 1)

_CANONICAL_ID = re.compile(
    rf"[{FIRST_CHARACTERS}][{OTHER_CHARACTERS}]{{{CANONICAL_ID_LENGTH - 1}}}", re.ASCII
)


def is_canonical_id(value: object) -> bool:
    return isinstance(value, str) and _CANONICAL_ID.fullmatch(value) is not None


def validate_canonical_id(value: object) -> str:
    """Return `value` unchanged if it is a well-formed ID, else raise naming what is wrong."""
    if not isinstance(value, str):
        raise InvalidCanonicalIdError(value, f"expected a string, got {type(value).__name__}")
    if len(value) != CANONICAL_ID_LENGTH:
        raise InvalidCanonicalIdError(
            value, f"must be {CANONICAL_ID_LENGTH} characters, got {len(value)}"
        )
    if value[0] not in FIRST_CHARACTERS:
        raise InvalidCanonicalIdError(
            value, "must start with a lower-case letter other than o, i or l"
        )
    bad = sorted({c for c in value[1:] if c not in OTHER_CHARACTERS})
    if bad:
        raise InvalidCanonicalIdError(
            value, f"characters {''.join(bad)!r} are not allowed (a-z without o/i/l, 2-9)"
        )
    return value


# Bulk generation, for pool top-ups. Drawing each character with `secrets.choice` costs eight
# calls per ID; instead draw one cryptographically random 64-bit integer per ID (os.urandom, the
# same source `secrets` uses), keep it only below the largest multiple of the ID space so every
# ID stays equally likely, and spell it in mixed radix: 23 for the first character, 31 for the
# other seven. Spelling three characters at a time through a 31**3-entry table keeps it to three
# divisions per ID.
_OTHER_RADIX = len(OTHER_CHARACTERS)
_TRIPLE_SPACE = _OTHER_RADIX**3
_TRIPLES = [a + b + c for a in OTHER_CHARACTERS for b in OTHER_CHARACTERS for c in OTHER_CHARACTERS]
_HEADS = [f + o for f in FIRST_CHARACTERS for o in OTHER_CHARACTERS]
_WORD_BYTES = 8
_ACCEPT_BELOW = (2 ** (8 * _WORD_BYTES) // ID_SPACE_SIZE) * ID_SPACE_SIZE


def _spell(value: int) -> str:
    # value < ID_SPACE_SIZE = 23 * 31**7; head covers the first two characters (23 * 31).
    rest, low = divmod(value, _TRIPLE_SPACE)
    head, middle = divmod(rest, _TRIPLE_SPACE)
    return _HEADS[head] + _TRIPLES[middle] + _TRIPLES[low]


def generate_canonical_ids_bulk(count: int) -> list[str]:
    """`count` uniformly random IDs, fast (duplicates are possible, as with one-at-a-time draws)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    ids: list[str] = []
    while len(ids) < count:
        needed = count - len(ids)
        words = memoryview(os.urandom(needed * _WORD_BYTES)).cast("Q")
        ids.extend(_spell(w % ID_SPACE_SIZE) for w in words if w < _ACCEPT_BELOW)
    return ids
