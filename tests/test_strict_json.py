"""`strict_json.loads`: JSON from users, refused rather than silently changed."""

from __future__ import annotations

import pytest

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.strict_json import InvalidJsonError, loads


def test_plain_json_parses_as_the_standard_library_would():
    text = '{"source": "Work[sierra-system-number/b1]", "n": [1, 2.5, true, null], "e": {}}'
    assert loads(text) == {
        "source": "Work[sierra-system-number/b1]",
        "n": [1, 2.5, True, None],
        "e": {},
    }


def test_duplicate_keys_are_refused_naming_the_key():
    text = '{"source": "x", "predecessor": "Work[s/b1]", "predecessor": null}'
    with pytest.raises(InvalidJsonError) as raised:
        loads(text, what="line 3")
    message = str(raised.value)
    assert message.startswith("line 3 is not valid JSON (duplicate key 'predecessor')")
    assert isinstance(raised.value, InvalidInputError)


def test_duplicate_keys_in_nested_objects_are_refused():
    with pytest.raises(InvalidJsonError, match="duplicate key 'a'"):
        loads('{"outer": [{"a": 1, "b": 2, "a": 1}]}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_constants_are_refused(constant):
    with pytest.raises(InvalidJsonError, match=f"{constant} is not a JSON value"):
        loads(f'{{"x": {constant}}}')


def test_a_float_beyond_a_double_is_refused_not_made_infinite():
    with pytest.raises(InvalidJsonError, match="1e999"):
        loads('{"x": 1e999}')


def test_a_5000_digit_integer_is_one_error_not_a_traceback():
    with pytest.raises(InvalidJsonError, match="5,000 digits"):
        loads('{"x": ' + "9" * 5000 + "}")


def test_deep_nesting_is_refused_before_parsing():
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidJsonError, match="nested deeper than 100 levels") as raised:
        loads(text)
    assert len(str(raised.value)) < 400


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = '{"value": "' + "[" * 500 + '"}'
    assert loads(text) == {"value": "[" * 500}


def test_nesting_up_to_the_bound_parses():
    assert loads("[" * 100 + "]" * 100) is not None
    with pytest.raises(InvalidJsonError):
        loads("[" * 101 + "]" * 101)


def test_a_huge_bad_input_gives_a_short_error_with_its_length():
    text = '{"x": "' + "a" * 10_000_000
    with pytest.raises(InvalidJsonError) as raised:
        loads(text)
    message = str(raised.value)
    assert len(message) < 500
    assert "10,000,007 characters in all" in message


def test_invalid_utf8_bytes_are_refused():
    with pytest.raises(InvalidJsonError, match="not UTF-8"):
        loads(b'{"x": "\xff"}')
