"""The public canonical ID format: 8 characters, unambiguous when read aloud or written down.

The first character is a letter (XML identifiers cannot start with a digit); the rest may also be
digits 2-9. `o`, `i`, `l` and `1` are excluded because they are easily confused with `0`, `1`,
`I` and `l`. That leaves 23 letters and 31 symbols: 23 * 31**7, about 633 billion IDs.

The space is split by the first character into two partitions (docs/design/forks.md): a
production registry generates and hands out only IDs starting with one of 22 letters
(`PRODUCTION`, about 605 billion IDs), a fork of it (a test registry loaded from a dump or an
Aurora clone) only IDs starting with `z` (`FORK`, about 27.5 billion). Both are valid IDs; the
partition only decides where a registry draws new ones, so a fork can never hand out an ID that
production has handed out or will.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from idminter_pipeline.core.errors import InvalidCanonicalIdError

CANONICAL_ID_LENGTH = 8
FIRST_CHARACTERS = "".join(c for c in "abcdefghijklmnopqrstuvwxyz" if c not in "oil")
OTHER_CHARACTERS = FIRST_CHARACTERS + "23456789"
ID_SPACE_SIZE = len(FIRST_CHARACTERS) * len(OTHER_CHARACTERS) ** (CANONICAL_ID_LENGTH - 1)

FORK_FIRST_CHARACTERS = "z"


@dataclass(frozen=True)
class IdPartition:
    """The IDs whose first character is one of `first_characters` (contiguous in ASCII order
    within `FIRST_CHARACTERS`, so the partition is one index range: `lower` <= ID < `upper`)."""

    name: str
    first_characters: str

    @property
    def lower(self) -> str:
        return self.first_characters[0]

    @property
    def upper(self) -> str:
        return chr(ord(self.first_characters[-1]) + 1)

    @property
    def size(self) -> int:
        return len(self.first_characters) * len(OTHER_CHARACTERS) ** (CANONICAL_ID_LENGTH - 1)

    def contains(self, canonical_id: str) -> bool:
        return self.lower <= canonical_id < self.upper and canonical_id[:1] in self.first_characters


PRODUCTION = IdPartition(
    "production", "".join(c for c in FIRST_CHARACTERS if c not in FORK_FIRST_CHARACTERS)
)
FORK = IdPartition("fork", FORK_FIRST_CHARACTERS)


def partition_for(is_fork: bool) -> IdPartition:
    return FORK if is_fork else PRODUCTION


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
_WORD_BYTES = 8


def _spell(value: int, heads: list[str]) -> str:
    # value < the partition's size; head covers the first two characters (first letters * 31).
    rest, low = divmod(value, _TRIPLE_SPACE)
    head, middle = divmod(rest, _TRIPLE_SPACE)
    return heads[head] + _TRIPLES[middle] + _TRIPLES[low]


def generate_canonical_ids_bulk(count: int, partition: IdPartition = PRODUCTION) -> list[str]:
    """`count` uniformly random IDs of `partition`, fast (duplicates are possible, as with
    one-at-a-time draws)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    heads = [f + o for f in partition.first_characters for o in OTHER_CHARACTERS]
    space = partition.size
    accept_below = (2 ** (8 * _WORD_BYTES) // space) * space
    ids: list[str] = []
    while len(ids) < count:
        needed = count - len(ids)
        words = memoryview(os.urandom(needed * _WORD_BYTES)).cast("Q")
        ids.extend(_spell(w % space, heads) for w in words if w < accept_below)
    return ids


def generate_canonical_id(partition: IdPartition = PRODUCTION) -> str:
    """One uniformly random ID of `partition` (where a claim starts reading the pool)."""
    (canonical_id,) = generate_canonical_ids_bulk(1, partition)
    return canonical_id
