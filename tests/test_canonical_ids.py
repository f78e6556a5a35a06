from collections import Counter

import pytest

from idminter_pipeline.core.canonical_ids import (
    CANONICAL_ID_LENGTH,
    FIRST_CHARACTERS,
    FORK,
    ID_SPACE_SIZE,
    OTHER_CHARACTERS,
    generate_canonical_ids_bulk,
    is_canonical_id,
    validate_canonical_id,
)
from idminter_pipeline.core.errors import InvalidCanonicalIdError

DRAWS = 20_000


def test_alphabets_follow_the_public_rules():
    assert len(FIRST_CHARACTERS) == 23
    assert set(FIRST_CHARACTERS).isdisjoint("oil0123456789")
    assert set(OTHER_CHARACTERS) == set(FIRST_CHARACTERS) | set("23456789")
    assert ID_SPACE_SIZE == 23 * 31**7


def test_every_draw_is_valid_and_uses_the_whole_alphabet():
    ids = generate_canonical_ids_bulk(DRAWS)
    assert len(ids) == DRAWS
    for canonical_id in ids:
        assert len(canonical_id) == CANONICAL_ID_LENGTH
        assert canonical_id[0] in FIRST_CHARACTERS
        assert all(c in OTHER_CHARACTERS for c in canonical_id[1:])
        assert validate_canonical_id(canonical_id) == canonical_id
    first = Counter(i[0] for i in ids)
    rest = Counter(c for i in ids for c in i[1:])
    # A registry draws from its partition: production every first letter but the fork's.
    assert set(first) == set(FIRST_CHARACTERS) - set(FORK.first_characters)
    assert {i[0] for i in generate_canonical_ids_bulk(200, FORK)} == set(FORK.first_characters)
    assert set(rest) == set(OTHER_CHARACTERS)
    # Uniform draws: each of the 31 symbols lands near 1/31 of 140,000 positions (~4,516).
    assert min(rest.values()) > 4_000
    assert max(rest.values()) < 5_050
    assert len(set(ids)) >= DRAWS - 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "must be 8 characters, got 3"),
        ("abcdefghj", "must be 8 characters, got 9"),
        ("2bcdefgh", "must start with a lower-case letter"),
        ("obcdefgh", "must start with a lower-case letter"),
        ("Abcdefgh", "must start with a lower-case letter"),
        ("abcdefg1", "characters '1' are not allowed"),
        ("abcdef0l", "characters '0l' are not allowed"),
        ("abcdEfgh", "characters 'E' are not allowed"),
        ("abc efgh", "characters ' ' are not allowed"),
        (12345678, "expected a string, got int"),
    ],
)
def test_validator_names_the_value_and_the_rule(value, reason):
    with pytest.raises(InvalidCanonicalIdError) as raised:
        validate_canonical_id(value)
    assert repr(value) in str(raised.value)
    assert reason in str(raised.value)
    assert raised.value.value == value
    assert not is_canonical_id(value)


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="-1"):
        generate_canonical_ids_bulk(-1)
