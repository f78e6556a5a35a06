import pytest

from idminter_pipeline.core.errors import InvalidSourceIdentifierError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.source_identifiers import (
    SourceIdentifier,
    registered_ontology_type,
)

LONG = "x" * 256


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("Work[sierra-system-number/b1161044x]", ("Work", "sierra-system-number", "b1161044x")),
        (
            "Image[mets-image/b28065037/FILE_0175_OBJECTS]",
            ("Image", "mets-image", "b28065037/FILE_0175_OBJECTS"),
        ),
        (
            "Concept[label-derived/Smith, John [1850-1900]]",
            ("Concept", "label-derived", "Smith, John [1850-1900]"),
        ),
        ("Concept[label-derived/Ἀριστοτέλης]", ("Concept", "label-derived", "Ἀριστοτέλης")),
        ("Work[calm-record-id/a b]", ("Work", "calm-record-id", "a b")),
    ],
)
def test_parse_and_print_round_trip(text, parts):
    parsed = SourceIdentifier.parse(text)
    assert parsed.as_key() == parts
    assert str(parsed) == text
    assert SourceIdentifier(*parts) == parsed


def test_values_keep_their_case():
    upper = SourceIdentifier.parse("Work[sierra-system-number/B1161044X]")
    lower = SourceIdentifier.parse("Work[sierra-system-number/b1161044x]")
    assert upper != lower
    assert upper.source_id == "B1161044X"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected the form"),
        ("sierra-system-number/b1161044x", "expected the form"),
        ("Work(sierra-system-number/b1161044x)", "expected the form"),
        ("Work[sierra-system-number b1161044x]", "expected the form"),
        ("Work[sierra-system-number/b1161044x", "expected the form"),
        ("Work[/b1161044x]", "source system must not be empty"),
        ("Work[sierra-system-number/]", "source id must not be empty"),
        ("[sierra-system-number/b1]", "ontology type must not be empty"),
        ("Person[lc-names/n79021164]", "unknown ontology type (register it as Concept)"),
        ("Widget[lc-names/n79021164]", "unknown ontology type"),
        ("work[sierra-system-number/b1]", "unknown ontology type"),
        ("Work[sierra-system-number/ b1]", "leading or trailing whitespace"),
        ("Work[sierra-system-number/b1 ]", "leading or trailing whitespace"),
        ("Work[sierra-system-number/b1\x00]", "control character U+0000"),
        ("Work[sierra-system-number/b\n1]", "control character U+000A"),
        ("Work[sierra-system-number/b\ud8001]", "unpaired surrogate U+D800"),
        ("Work[sierra system/b1]", "must not contain whitespace"),
        ("Work[sierra-system-number/" + "x" * 256 + "]", "is 256 characters long"),
    ],
)
def test_malformed_strings_are_rejected_naming_the_input(text, reason):
    with pytest.raises(InvalidSourceIdentifierError) as raised:
        SourceIdentifier.parse(text)
    # Named, but capped: a value over 200 characters shows its start and its full length.
    assert excerpt(text) in str(raised.value)
    assert reason in str(raised.value)


def test_part_of_exactly_255_characters_is_accepted():
    value = "é" * 255
    assert SourceIdentifier("Concept", "label-derived", value).source_id == value


@pytest.mark.parametrize("bad", [None, 42, b"Work[a/b]", ["Work[a/b]"]])
def test_non_strings_are_rejected(bad):
    with pytest.raises(InvalidSourceIdentifierError, match="expected a string"):
        SourceIdentifier.parse(bad)
    with pytest.raises(InvalidSourceIdentifierError, match="must be a string"):
        SourceIdentifier("Work", "sierra-system-number", bad)


def test_concept_subtypes_register_as_concept():
    assert registered_ontology_type("Person") == "Concept"
    assert registered_ontology_type("Period") == "Concept"
    assert registered_ontology_type("Work") == "Work"
    assert registered_ontology_type("Subject") == "Subject"


def test_identifiers_are_hashable_and_ordered():
    a = SourceIdentifier("Work", "sierra-system-number", "b1")
    b = SourceIdentifier("Work", "sierra-system-number", "b2")
    assert {a: 1}[SourceIdentifier("Work", "sierra-system-number", "b1")] == 1
    assert sorted([b, a]) == [a, b]


@pytest.mark.parametrize(
    ("parts", "names"),
    [
        (("Work", "sierra-system-number", ""), "''"),
        (("Work", "sierra-system-number", " b1"), "' b1'"),
        (("Work", "sierra-system-number", "b1 "), "'b1 '"),
        (("Work", "sierra-system-number", LONG), LONG[:40]),
        (("Work", "sierra-system-number", "b\ud800"), "\\ud800"),
        (("Work", "sierra-system-number", "b\x00"), "\\x00"),
        (("Widget", "sierra-system-number", "b1"), "'Widget'"),
        (("Work", "sierra/number", "b1"), "'sierra/number'"),
        (("Work", "sierra-system-number", 1), "1"),
    ],
)
def test_api_source_identifiers_refuse_unstorable_parts(parts, names):
    with pytest.raises(InvalidSourceIdentifierError) as raised:
        SourceIdentifier(*parts)
    assert names in str(raised.value)
