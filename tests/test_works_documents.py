"""Extracting and annotating work documents: the reference's realistic example, edge cases."""

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from idminter_pipeline.core.errors import InvalidSourceIdentifierError, MalformedWorkError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.works.documents import (
    MAX_DOCUMENT_DEPTH,
    Stage,
    annotate_work,
    decode_document,
    encode_document,
    extract_work,
    path_to,
    work_document_id,
)
from idminter_pipeline.works.sample_data import generate_works

FOLIO_WORK = json.loads((Path(__file__).parent / "fixtures" / "folio_work.json").read_text())
FOLIO_ID = "Work[folio-instance/in00000000001]"
SI = SourceIdentifier


def _node_paths(extracted):
    """The JSON path of each node the extraction found, in its order."""
    return [path_to(extracted.document, node.node) for node in extracted.nodes]


def _si(system, ontology, value):
    return {"identifierType": {"id": system}, "ontologyType": ontology, "value": value}


def _node(system, ontology, value, **extra):
    return {
        "sourceIdentifier": _si(system, ontology, value),
        "otherIdentifiers": [],
        "identifiedType": "Identified",
        "type": "Identifiable",
        **extra,
    }


def _work(value="b1", **state):
    return {
        "indexed_at": "2026-07-30T16:33:00Z",
        "data": {},
        "state": {"sourceIdentifier": _si("sierra-system-number", "Work", value), **state},
    }


def test_reference_example_produces_exactly_the_listed_registry_requests():
    extracted = extract_work(FOLIO_WORK, document_id=FOLIO_ID)
    assert extracted.work_id == FOLIO_ID
    assert extracted.source == SI("Work", "folio-instance", "in00000000001")
    assert extracted.predecessor == SI("Work", "sierra-system-number", "b1000001")
    assert set(extracted.identifiers) == {
        SI("Concept", "lc-names", "n79021164"),
        SI("Item", "folio-item", "7f3c0a1e-0000-4000-8000-000000000001"),
        SI("Image", "mets-image", "b1000001/FILE_0001_OBJECTS"),
        SI("Work", "folio-instance", "in00000000001"),
        SI("Work", "mets", "b1000001"),
    }
    assert len(extracted.identifiers) == 5
    # Not minted: data.otherIdentifiers and the predecessor itself.
    assert SI("Work", "sierra-identifier", "1000001") not in extracted.identifiers
    assert extracted.predecessor not in extracted.identifiers
    assert extracted.identifiers[0] == extracted.source
    assert set(_node_paths(extracted)) == {
        "state",
        "state.mergeCandidates[0].id",
        "data.contributors[0].agent.id",
        "data.items[0].id",
        "data.imageData[0].id",
    }


def test_annotation_edits_only_the_minted_nodes():
    original = copy.deepcopy(FOLIO_WORK)
    document = copy.deepcopy(FOLIO_WORK)
    extracted = extract_work(document, document_id=FOLIO_ID)
    ids = {source: f"id{n:05d}"[:8] for n, source in enumerate(extracted.identifiers)}
    identified = annotate_work(extracted, ids)
    assert identified.document is document, "the decoded document is annotated in place"
    doc = identified.document
    assert identified.canonical_id == ids[extracted.source] == doc["state"]["canonicalId"]
    assert identified.source_id == FOLIO_ID
    item_id = doc["data"]["items"][0]["id"]
    assert (
        item_id["canonicalId"]
        == ids[SI("Item", "folio-item", "7f3c0a1e-0000-4000-8000-000000000001")]
    )
    assert item_id["type"] == "Identified" and "identifiedType" not in item_id
    agent = doc["data"]["contributors"][0]["agent"]
    assert agent["id"]["canonicalId"] == ids[SI("Concept", "lc-names", "n79021164")]
    assert agent["type"] == "Person", "a node's sibling fields are untouched"
    merge = doc["state"]["mergeCandidates"][0]
    assert merge["id"]["canonicalId"] == ids[SI("Work", "mets", "b1000001")]
    assert merge["reason"] == "METS work"
    # Undo exactly the documented edits: what remains must equal the source document.
    undone = copy.deepcopy(doc)
    del undone["state"]["canonicalId"]
    for holder in (
        undone["data"]["items"][0],
        undone["data"]["imageData"][0],
        undone["data"]["contributors"][0]["agent"],
        undone["state"]["mergeCandidates"][0],
    ):
        node = holder["id"]
        del node["canonicalId"]
        node["identifiedType"] = node.pop("type")
        node["type"] = "Identifiable"
    assert json.dumps(undone, sort_keys=True) == json.dumps(original, sort_keys=True)
    assert doc["indexed_at"] == original["indexed_at"]
    assert doc["data"]["otherIdentifiers"] == original["data"]["otherIdentifiers"]
    assert doc["state"]["predecessorIdentifier"] == original["state"]["predecessorIdentifier"]


def test_null_canonical_id_is_replaced_and_bare_identifiable_becomes_identified():
    document = _work()
    document["data"]["items"] = [
        {
            "id": {
                "canonicalId": None,
                "sourceIdentifier": _si("folio-item", "Item", "x"),
                "type": "Identifiable",
            }
        }
    ]
    document["data"]["notes"] = [{"canonicalId": None, "type": "Unidentifiable"}]
    extracted = extract_work(document, document_id="Work[sierra-system-number/b1]")
    identified = annotate_work(extracted, {s: "abcd2345" for s in extracted.identifiers})
    item = identified.document["data"]["items"][0]["id"]
    assert item == {
        "canonicalId": "abcd2345",
        "sourceIdentifier": _si("folio-item", "Item", "x"),
        "type": "Identified",
    }
    assert identified.document["data"]["notes"] == [{"canonicalId": None, "type": "Unidentifiable"}]


def test_nodes_at_any_depth_are_found_and_bare_identifiers_are_not():
    document = _work(
        internalWorkStubs=[
            {
                "sourceIdentifier": _si("calm-record-id", "Work", "stub-1"),
                "workData": {"items": [{"id": _node("calm-item", "Item", "deep")}]},
            }
        ],
        mergeCandidates=[],
    )
    document["redirectTarget"] = _node("miro-image-number", "Work", "V1")
    document["data"]["production"] = [
        {
            "agents": [{"id": _node("label-derived", "Organisation", "Acme")}],
            "places": [{"id": _node("label-derived", "Place", "Leiden")}],
        }
    ]
    document["data"]["genres"] = [
        {"concepts": [{"id": _node("label-derived", "Genre", "Posters")}]}
    ]
    document["data"]["otherIdentifiers"] = [_si("sierra-identifier", "Work", "999")]
    document["data"]["items"] = [
        {
            "id": {
                **_node("sierra-system-number", "Item", "i1"),
                "otherIdentifiers": [_si("barcode", "Item", "x1")],
            }
        }
    ]
    extracted = extract_work(document, document_id="Work[sierra-system-number/b1]")
    assert set(extracted.identifiers) == {
        SI("Work", "sierra-system-number", "b1"),
        SI("Work", "calm-record-id", "stub-1"),
        SI("Item", "calm-item", "deep"),
        SI("Work", "miro-image-number", "V1"),
        SI("Concept", "label-derived", "Acme"),
        SI("Concept", "label-derived", "Leiden"),
        SI("Concept", "label-derived", "Posters"),
        SI("Item", "sierra-system-number", "i1"),
    }
    assert "state.internalWorkStubs[0].workData.items[0].id" in _node_paths(extracted)


def test_repeated_identifier_is_requested_once_and_every_occurrence_annotated():
    document = _work()
    person = _node("lc-names", "Person", "n1")
    document["data"]["contributors"] = [
        {"agent": {"id": person}},
        {"agent": {"id": copy.deepcopy(person)}},
    ]
    extracted = extract_work(document, document_id="x")
    assert extracted.identifiers.count(SI("Concept", "lc-names", "n1")) == 1
    identified = annotate_work(extracted, {s: "zzzz2222" for s in extracted.identifiers})
    assert [
        c["agent"]["id"]["canonicalId"] for c in identified.document["data"]["contributors"]
    ] == ["zzzz2222", "zzzz2222"]


def test_null_predecessor_means_none():
    extracted = extract_work(_work(predecessorIdentifier=None), document_id="x")
    assert extracted.predecessor is None


@contextmanager
def _refused(stage: Stage, work_id: str, detail: str) -> Iterator[None]:
    """The block raises a `MalformedWorkError` at `stage` for `work_id`, its detail naming
    `detail`."""
    with pytest.raises(MalformedWorkError) as raised:
        yield
    assert raised.value.stage == stage
    assert raised.value.work_id == work_id
    assert detail in raised.value.detail


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ([], "document: expected an object, got array"),
        ({"data": {}}, "state: has no 'state'"),
        ({"state": "b1"}, "state: expected an object, got string"),
        ({"state": {}}, "state.sourceIdentifier: missing"),
        (
            {"state": {"sourceIdentifier": None}},
            "state.sourceIdentifier: expected a source identifier object, got null",
        ),
        (
            {
                "state": {
                    "sourceIdentifier": {
                        "identifierType": "sierra",
                        "ontologyType": "Work",
                        "value": "b1",
                    }
                }
            },
            "state.sourceIdentifier.identifierType: expected an object, got string",
        ),
        (
            {"state": {"sourceIdentifier": _si("sierra-system-number", "Work", 12)}},
            "state.sourceIdentifier.value: expected a string, got number",
        ),
        (
            {"state": {"sourceIdentifier": _si("sierra-system-number", "Work", " b1")}},
            "leading or trailing whitespace",
        ),
        (
            {"state": {"sourceIdentifier": _si("sierra-system-number", "Item", "i1")}},
            "a work's ontology type must be Work",
        ),
        (
            {"state": {"sourceIdentifier": _si("sierra-system-number", "Spaceship", "b1")}},
            "unknown ontology type",
        ),
    ],
)
def test_malformed_documents_fail_extraction_with_a_readable_detail(document, detail):
    with _refused(Stage.EXTRACT, "Work[sierra-system-number/b1]", detail):
        extract_work(document, document_id="Work[sierra-system-number/b1]")


def test_a_bad_nested_node_fails_the_work_naming_the_path_and_the_work():
    document = _work("b7")
    document["data"]["items"] = [
        {"id": _node("folio-item", "Item", "ok")},
        {"id": _node("folio-item", "Item", "bad\x00value")},
    ]
    with pytest.raises(MalformedWorkError) as raised:
        extract_work(document, document_id="ignored")
    assert raised.value.work_id == "Work[sierra-system-number/b7]"
    assert raised.value.detail.startswith("data.items[1].id.sourceIdentifier:")
    assert "control character" in raised.value.detail


def test_predecessor_rules():
    with pytest.raises(MalformedWorkError, match="own predecessor"):
        extract_work(
            _work(predecessorIdentifier=_si("sierra-system-number", "Work", "b1")), document_id="x"
        )
    with pytest.raises(
        MalformedWorkError, match=r"state.predecessorIdentifier.value: expected a string"
    ):
        extract_work(
            _work(predecessorIdentifier=_si("sierra-system-number", "Work", None)), document_id="x"
        )


def test_annotation_refuses_missing_or_different_canonical_ids_and_leaves_the_document_alone():
    document = _work()
    document["data"]["items"] = [{"id": _node("folio-item", "Item", "i")}]
    extracted = extract_work(document, document_id="x")
    before = copy.deepcopy(document)
    with pytest.raises(MalformedWorkError) as raised:
        annotate_work(extracted, {extracted.source: "aaaa2222"})
    assert raised.value.stage == Stage.ANNOTATE
    assert raised.value.detail == "data.items[0].id: no canonical ID for Item[folio-item/i]"
    assert document == before, "a refused work is not half annotated"
    document["data"]["items"][0]["id"]["canonicalId"] = "bbbb3333"
    with pytest.raises(MalformedWorkError, match="already 'bbbb3333'") as raised:
        annotate_work(extracted, {s: "cccc4444" for s in extracted.identifiers})
    assert raised.value.stage == Stage.ANNOTATE
    assert document["state"].get("canonicalId") is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sierra-system-number/b1161044x", "Work[sierra-system-number/b1161044x]"),
        ("Work[sierra-system-number/b1161044x]", "Work[sierra-system-number/b1161044x]"),
        ("mets-image/b1/FILE", "Work[mets-image/b1/FILE]"),
    ],
)
def test_work_document_ids_accept_both_forms(given, expected):
    assert work_document_id(given) == expected


@pytest.mark.parametrize("bad", ["b1161044x", "Item[folio-item/x]", "sierra/ b1", 7, ""])
def test_work_document_ids_reject_bad_values_naming_them(bad):
    with pytest.raises(InvalidSourceIdentifierError) as raised:
        work_document_id(bad)
    assert repr(bad) in str(raised.value) or str(bad) in str(raised.value)


def test_sample_works_are_deterministic_realistic_and_extractable():
    first = list(generate_works(200, seed=3))
    assert first == list(generate_works(200, seed=3))
    assert first != list(generate_works(200, seed=4))
    assert list(generate_works(10, seed=3, offset=50)) == first[50:60]
    extracted = [extract_work(w.document, document_id=w.id) for w in first]
    assert all(e.work_id == w.id for e, w in zip(extracted, first, strict=True))
    systems = {e.source.source_system for e in extracted}
    assert {
        "sierra-system-number",
        "calm-record-id",
        "folio-instance",
        "axiell-collections-id",
        "mets",
        "miro-image-number",
    } <= systems
    average = sum(len(e.identifiers) for e in extracted) / len(extracted)
    assert 5 <= average <= 8
    ids = {e.source for e in extracted}
    successors = [e for e in extracted if e.predecessor is not None]
    assert successors and all(e.predecessor in ids for e in successors)
    # Successors come after their predecessors in indexed_at order.
    position = {e.source: n for n, e in enumerate(extracted)}
    assert all(position[e.predecessor] < position[e.source] for e in successors)
    new_folio = [
        e for e in extracted if e.source.source_system == "folio-instance" and e.predecessor is None
    ]
    assert (
        0
        < len(new_folio)
        < len([e for e in extracted if e.source.source_system == "folio-instance"]) / 5
    )
    ontologies = {s.ontology_type for e in extracted for s in e.identifiers}
    assert ontologies == {"Work", "Item", "Image", "Subject", "Concept"}
    times = [w.document["indexed_at"] for w in first]
    assert times == sorted(times)


# -- decoding: stage `read` ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "the stored text is empty"),
        ("  \n", "the stored text is empty"),
        (b"{not json", "the stored text is not valid JSON"),
        (b'{"state": {}', "the stored text is not valid JSON"),
        (b"null", "the stored document is null, not an object"),
        ("[1, 2]", "the stored document is array, not an object"),
        (b'"a string"', "the stored document is string, not an object"),
        (None, "the stored document is null, not an object"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b'{"a": 1e999}', "not valid JSON"),
        (b'{"a": "\xff\xfe"}', "not valid JSON"),
        (b'{"a": "\\ud800"}', "not valid JSON"),  # a lone surrogate, escaped
        ('{"a": "\ud800"}', "a lone surrogate"),  # one in text a client decoded
        # A run of 20 digits sends the text to the exact parser, which refuses duplicate keys.
        (b'{"n": 123456789012345678901234567890, "n": 1}', "duplicate key 'n'"),
    ],
)
def test_unreadable_stored_text_fails_at_read_naming_the_work(content, detail):
    with _refused(Stage.READ, "Work[s/v]", detail):
        decode_document(content, work_id="Work[s/v]")


def test_decoding_keeps_every_value_exactly():
    text = (
        '{"big": 123456789012345678901234567890, "negative": -98765432109876543210, '
        '"float": 0.1, "max": 18446744073709551615, "text": "caf\\u00e9 \\ud83d\\ude00"}'
    )
    document = decode_document(text.encode(), work_id="x")
    assert document == json.loads(text)
    assert type(document["big"]) is int
    assert json.loads(encode_document(document)) == json.loads(text)
    assert decode_document({"already": "decoded"}, work_id="x") == {"already": "decoded"}


def test_unreadable_text_is_named_but_never_echoed_whole():
    huge = b"{" + b"x" * 1_000_000
    with pytest.raises(MalformedWorkError) as raised:
        decode_document(huge, work_id="x")
    assert len(raised.value.detail) < 500
    assert "1,000,001 bytes in all" in raised.value.detail


# -- depth: walked without recursion, refused past the documented limit --------------------------


def _nested(depth: int) -> dict:
    """A work document whose deepest object sits `depth` levels down (the root is level 1)."""
    document = _work()
    inner: dict = {}
    document["data"]["deep"] = inner
    for _ in range(depth - 3):  # root, data and deep are three levels
        inner["child"] = {}
        inner = inner["child"]
    return document


def test_documents_up_to_the_depth_limit_are_walked_and_deeper_ones_refused():
    extract_work(_nested(MAX_DOCUMENT_DEPTH), document_id="x")
    for depth in (MAX_DOCUMENT_DEPTH + 1, 600, 100_000):  # far past the interpreter's stack
        with pytest.raises(MalformedWorkError) as raised:
            extract_work(_nested(depth), document_id="x")
        assert raised.value.stage == Stage.EXTRACT
        assert f"nests deeper than {MAX_DOCUMENT_DEPTH} levels" in raised.value.detail


def test_an_empty_array_counts_for_the_depth_limit_as_an_object_does():
    # The walk skips empty containers, except one level short of the limit.
    for depth, refused in ((MAX_DOCUMENT_DEPTH, False), (MAX_DOCUMENT_DEPTH + 1, True)):
        document = _nested(depth - 1)
        deepest = document["data"]["deep"]
        while deepest:
            deepest = deepest["child"]
        deepest["child"] = []
        if not refused:
            extract_work(document, document_id="x")
            continue
        with pytest.raises(MalformedWorkError) as raised:
            extract_work(document, document_id="x")
        assert raised.value.detail.startswith(f"the document nests deeper than {depth - 1} levels")
        assert raised.value.detail.endswith(
            f"(at data.deep{'.child' * (depth - 3)}), the limit for work documents"
        )


def test_a_deep_node_is_found_and_a_deep_bad_node_is_named_by_its_path():
    document = _nested(MAX_DOCUMENT_DEPTH - 1)
    deepest = document["data"]["deep"]
    while deepest:
        deepest = deepest["child"]
    deepest["sourceIdentifier"] = _si("folio-item", "Item", "deep")
    extracted = extract_work(document, document_id="x")
    assert SI("Item", "folio-item", "deep") in extracted.identifiers
    deepest["sourceIdentifier"] = _si("folio-item", "Item", "")
    with pytest.raises(MalformedWorkError) as raised:
        extract_work(document, document_id="x")
    assert raised.value.detail.startswith("data.deep" + ".child" * (MAX_DOCUMENT_DEPTH - 4))


def test_the_depth_limit_matches_what_works_load_accepts():
    from idminter_pipeline.core.strict_json import DEFAULT_MAX_DEPTH  # noqa: PLC0415

    assert MAX_DOCUMENT_DEPTH == DEFAULT_MAX_DEPTH


# -- identifiers are validated once per batch ----------------------------------------------------


def test_a_shared_cache_validates_each_identifier_once_and_never_keeps_a_bad_one():
    cache = {}
    first = extract_work(_work("b1"), document_id="x", cache=cache)
    second = extract_work(_work("b1"), document_id="y", cache=cache)
    assert first.source is second.source, "one validated identifier, shared"
    bad = _work("b2")
    bad["data"]["items"] = [{"id": _node("folio-item", "Item", "bad\x00")}]
    for _ in range(2):
        with pytest.raises(MalformedWorkError, match="control character"):
            extract_work(bad, document_id="z", cache=cache)
    assert all(isinstance(source, SI) for source in cache.values())
