"""`excerpt`: offending values named, never echoed whole."""

from __future__ import annotations

from idminter_pipeline.core.excerpts import excerpt


def test_short_values_are_shown_whole_as_repr():
    assert excerpt("b1 ") == "'b1 '"
    assert excerpt(42) == "42"


def test_long_strings_are_cut_with_their_full_length():
    shown = excerpt("x" * 1_000_000)
    assert shown == repr("x" * 200) + "... (1,000,000 characters in all)"


def test_long_bytes_say_bytes():
    assert excerpt(b"\xff" * 300, limit=10).endswith("... (300 bytes in all)")


def test_other_long_values_are_cut_after_repr():
    shown = excerpt(list(range(1000)), limit=20)
    assert shown.startswith("[0, 1, 2, 3, 4, 5, 6")
    assert shown.endswith("characters in all)")
    assert len(shown) < 60
