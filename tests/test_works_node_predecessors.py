"""Predecessors on every node, within one document: an item (image, concept) names the source
whose canonical ID it inherits, beside its own `sourceIdentifier`, as the work does in `state`."""

import copy

import pytest
from db_helpers import fetch_all
from works_helpers import fill_pool

from idminter_pipeline.core.errors import MalformedWorkError
from idminter_pipeline.core.source_identifiers import SourceIdentifier as SI
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.works import documents
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy
from idminter_pipeline.works.documents import (
    IdentifiedWork,
    SourceWork,
    Stage,
    annotate_work,
    extract_work,
)
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.shadow import SqliteReference, shadow_run
from idminter_pipeline.works.stores import IdsScope, SqliteWorksStore


def _si(system, ontology, value):
    return {"identifierType": {"id": system}, "ontologyType": ontology, "value": value}


def _id(system, ontology, value, predecessor=None):
    node = {
        "sourceIdentifier": _si(system, ontology, value),
        "otherIdentifiers": [],
        "identifiedType": "Identified",
        "type": "Identifiable",
    }
    if predecessor is not None:
        node["predecessorIdentifier"] = predecessor
    return node


def _folio(items, *, predecessor="b1", images=()):
    state = {"sourceIdentifier": _si("folio-instance", "Work", "in1")}
    if predecessor is not None:
        state["predecessorIdentifier"] = _si("sierra-system-number", "Work", predecessor)
    return {
        "data": {"items": [{"id": item} for item in items], "imageData": list(images)},
        "state": state,
    }


def _extract_failure(document):
    with pytest.raises(MalformedWorkError) as raised:
        extract_work(document, document_id="x")
    assert raised.value.stage == Stage.EXTRACT
    assert raised.value.work_id == "Work[folio-instance/in1]"
    return raised.value.detail


def test_an_item_names_the_sierra_item_it_inherits_from_beside_the_works_own_predecessor():
    document = _folio(
        [
            _id("folio-item", "Item", "f1", _si("sierra-system-number", "Item", "i1")),
            _id("folio-item", "Item", "f2", None),
            {**_id("folio-item", "Item", "f3"), "predecessorIdentifier": None},
        ],
        images=[{"id": _id("mets-image", "Image", "m1", _si("miro-image-number", "Image", "V1"))}],
    )
    extracted = extract_work(document, document_id="x")
    assert extracted.predecessor == SI("Work", "sierra-system-number", "b1")
    assert [(d.source, d.predecessor) for d in extracted.node_predecessors] == [
        (SI("Item", "folio-item", "f1"), SI("Item", "sierra-system-number", "i1")),
        (SI("Image", "mets-image", "m1"), SI("Image", "miro-image-number", "V1")),
    ]
    assert [extracted.predecessor_path(d) for d in extracted.declarations()] == [
        "state.predecessorIdentifier",
        "data.items[0].id.predecessorIdentifier",
        "data.imageData[0].id.predecessorIdentifier",
    ]
    # A predecessor is only what to inherit from: never minted, never annotated.
    assert SI("Item", "sierra-system-number", "i1") not in extracted.identifiers
    before = copy.deepcopy(document["data"]["items"][0]["id"]["predecessorIdentifier"])
    identified = annotate_work(extracted, {s: "abcd2345" for s in extracted.identifiers})
    item = identified.document["data"]["items"][0]["id"]
    assert item["canonicalId"] == "abcd2345"
    assert item["predecessorIdentifier"] == before


def test_a_concept_predecessor_is_registered_under_concept_like_its_source():
    document = _folio([], predecessor=None)
    document["data"]["contributors"] = [
        {"agent": {"id": _id("lc-names", "Person", "n1", _si("label-derived", "Agent", "darwin"))}}
    ]
    extracted = extract_work(document, document_id="x")
    assert [(d.source, d.predecessor) for d in extracted.node_predecessors] == [
        (SI("Concept", "lc-names", "n1"), SI("Concept", "label-derived", "darwin"))
    ]


def test_a_node_naming_itself_as_predecessor_fails_the_work_naming_its_path():
    detail = _extract_failure(
        _folio([_id("folio-item", "Item", "f1", _si("folio-item", "Item", "f1"))])
    )
    assert detail == (
        "data.items[0].id.predecessorIdentifier: Item[folio-item/f1] cannot be its own predecessor"
    )


def test_a_malformed_node_predecessor_fails_the_work_naming_its_path():
    detail = _extract_failure(
        _folio([_id("folio-item", "Item", "f1", _si("sierra-system-number", "Item", 7))])
    )
    assert detail == "data.items[0].id.predecessorIdentifier.value: expected a string, got number"


def test_two_predecessors_for_one_item_in_one_document_are_refused_naming_both():
    detail = _extract_failure(
        _folio(
            [
                _id("folio-item", "Item", "f1", _si("sierra-system-number", "Item", "i1")),
                _id("folio-item", "Item", "f2"),
                _id("folio-item", "Item", "f1", _si("sierra-system-number", "Item", "i2")),
            ]
        )
    )
    assert detail == (
        "data.items[0].id.predecessorIdentifier and data.items[2].id.predecessorIdentifier name "
        "different predecessors for Item[folio-item/f1]: Item[sierra-system-number/i1] and "
        "Item[sierra-system-number/i2]"
    )


def test_the_same_predecessor_named_twice_for_one_item_is_one_declaration():
    same = _si("sierra-system-number", "Item", "i1")
    extracted = extract_work(
        _folio([_id("folio-item", "Item", "f1", same), _id("folio-item", "Item", "f1", same)]),
        document_id="x",
    )
    assert {(d.source, d.predecessor) for d in extracted.node_predecessors} == {
        (SI("Item", "folio-item", "f1"), SI("Item", "sierra-system-number", "i1"))
    }


def test_a_node_giving_the_work_itself_another_predecessor_conflicts_with_state():
    document = _folio([])
    document["state"]["mergeCandidates"] = [
        {"id": _id("folio-instance", "Work", "in1", _si("calm-record-id", "Work", "c1"))}
    ]
    detail = _extract_failure(document)
    assert detail.startswith(
        "state.predecessorIdentifier and state.mergeCandidates[0].id.predecessorIdentifier name "
        "different predecessors for Work[folio-instance/in1]:"
    )


def test_predecessors_that_loop_within_a_document_are_refused_naming_both_places():
    detail = _extract_failure(
        _folio(
            [
                _id("folio-item", "Item", "f1", _si("folio-item", "Item", "f2")),
                _id("folio-item", "Item", "f2", _si("folio-item", "Item", "f1")),
            ]
        )
    )
    assert detail == (
        "data.items[0].id.predecessorIdentifier and data.items[1].id.predecessorIdentifier form "
        "a predecessor cycle: Item[folio-item/f1] -> Item[folio-item/f2] -> Item[folio-item/f1]"
    )


# -- across a batch and across runs, against the real registry ----------------------------------


def _work(system, value, *, predecessor=None, items=(), images=(), at="2026-07-30T09:00:00.000Z"):
    """A work; `items` and `images` are (system, value) or (system, value, (psystem, pvalue))."""

    def ids(entries, ontology):
        return [
            {
                "id": _id(
                    e[0], ontology, e[1], _si(e[2][0], ontology, e[2][1]) if len(e) > 2 else None
                )
            }
            for e in entries
        ]

    state = {"sourceIdentifier": _si(system, "Work", value)}
    if predecessor is not None:
        state["predecessorIdentifier"] = _si(*predecessor[:1], "Work", predecessor[1])
    document = {
        "indexed_at": at,
        "data": {"items": ids(items, "Item"), "imageData": ids(images, "Image")},
        "state": state,
    }
    return SourceWork(f"Work[{system}/{value}]", document)


def _sierra(value, *items, at="2026-07-30T09:00:00.000Z"):
    return _work(
        "sierra-system-number", value, items=[("sierra-system-number", i) for i in items], at=at
    )


def _folio_work(value, predecessor, *items, at="2026-07-30T09:00:01.000Z"):
    """A Folio work succeeding Sierra work `predecessor` (None: a new record); each item is
    `(folio value, sierra item value or None)`."""
    return _work(
        "folio-instance",
        value,
        predecessor=None if predecessor is None else ("sierra-system-number", predecessor),
        items=[
            ("folio-item", f, ("sierra-system-number", i)) if i else ("folio-item", f)
            for f, i in items
        ],
        at=at,
    )


@pytest.fixture
def minter(connect_registry):
    fill_pool(connect_registry, 500)
    with Minter(connect_registry) as m:
        yield m


def _run(store, minter, *works, **kwargs):
    store.put_source(works)
    return WorksPipeline(store, minter, churn_guard=ChurnGuardPolicy(enabled=False), **kwargs).run(
        IdsScope(tuple(w.id for w in works))
    )


def _ids(minter, *keys):
    found = minter.lookup_ids([SI(*key) for key in keys])
    return [found.get(SI(*key)) for key in keys]


def _item_ids(store, canonical_id):
    document = store.get_identified([canonical_id])[canonical_id]
    return {
        item["id"]["sourceIdentifier"]["value"]: item["id"]["canonicalId"]
        for item in document["data"]["items"]
    }


def test_folio_items_inherit_their_sierra_items_ids_in_the_works_transaction(
    store, minter, registry
):
    first = _run(store, minter, _sierra("b1", "i1", "i2"))
    assert first.failed == 0
    b1, i1, i2 = _ids(
        minter,
        ("Work", "sierra-system-number", "b1"),
        ("Item", "sierra-system-number", "i1"),
        ("Item", "sierra-system-number", "i2"),
    )

    summary = _run(store, minter, _folio_work("f1", "b1", ("fa", "i1"), ("fb", "i2"), ("fc", None)))
    assert summary.failed == 0 and summary.mint_calls == 1
    assert (summary.inherited, summary.minted) == (3, 1)
    f1, fa, fb, fc = _ids(
        minter,
        ("Work", "folio-instance", "f1"),
        ("Item", "folio-item", "fa"),
        ("Item", "folio-item", "fb"),
        ("Item", "folio-item", "fc"),
    )
    assert (f1, fa, fb) == (b1, i1, i2)
    assert fc not in (None, i1, i2)
    # The Folio work's document replaced the Sierra one under the shared work ID, its items
    # carrying the Sierra items' IDs.
    assert _item_ids(store, b1) == {"fa": i1, "fb": i2, "fc": fc}
    rows = fetch_all(
        registry,
        "SELECT SuccessorSourceId, PredecessorSourceId, CanonicalId FROM identifier_provenance "
        "WHERE Kind = 'inherited' ORDER BY SuccessorSourceId",
    )
    assert [tuple(r) for r in rows] == [("f1", "b1", b1), ("fa", "i1", i1), ("fb", "i2", i2)]


def test_a_batch_mixing_documents_with_and_without_node_predecessors(store, minter):
    works = [
        _sierra("b1", "i1"),
        _sierra("b2", "i2", "i3"),
        _folio_work("f1", "b1", ("fa", "i1")),  # work and item predecessors
        _folio_work("f2", "b2"),  # the work's only
        _folio_work("f3", None, ("fc", "i3")),  # an item's only: a new record keeping an item
        _work("mets", "m1", images=[("mets-image", "m1/1", ("miro-image-number", "V1"))]),
        _work("miro-image-number", "V1", images=[("miro-image-number", "V1")]),
        _sierra("b9", "i9"),  # nothing to inherit
    ]
    summary = _run(store, minter, *works)
    assert summary.failed == 0 and summary.mint_calls == 1
    got = dict(
        zip(
            ["b1", "i1", "b2", "i3", "f1", "fa", "f2", "f3", "fc", "m1/1", "V1"],
            _ids(
                minter,
                ("Work", "sierra-system-number", "b1"),
                ("Item", "sierra-system-number", "i1"),
                ("Work", "sierra-system-number", "b2"),
                ("Item", "sierra-system-number", "i3"),
                ("Work", "folio-instance", "f1"),
                ("Item", "folio-item", "fa"),
                ("Work", "folio-instance", "f2"),
                ("Work", "folio-instance", "f3"),
                ("Item", "folio-item", "fc"),
                ("Image", "mets-image", "m1/1"),
                ("Image", "miro-image-number", "V1"),
            ),
            strict=True,
        )
    )
    assert (got["f1"], got["fa"], got["f2"], got["fc"]) == (
        got["b1"],
        got["i1"],
        got["b2"],
        got["i3"],
    )
    assert got["m1/1"] == got["V1"]
    others = [canonical_id for key, canonical_id in got.items() if key != "f3"]
    assert got["f3"] not in others, "f3 is a new record: its own work ID"
    # Succession follows the works' chains only: b1 and b2 are superseded by their successors,
    # and nothing the items or images inherited supersedes a work.
    assert sorted(s.work_id for s in summary.superseded) == [
        "Work[sierra-system-number/b1]",
        "Work[sierra-system-number/b2]",
    ]
    assert summary.works_written == len(works) - 2


def test_an_item_moved_to_another_work_keeps_its_id_and_leaves_the_old_works_document_alone(
    store, minter
):
    # Sierra work b1 held item i1; in Folio the item sits under f2, the successor of b2.
    assert _run(store, minter, _sierra("b1", "i1"), _sierra("b2", "i2")).failed == 0
    summary = _run(store, minter, _folio_work("f2", "b2", ("fx", "i1"), ("fy", "i2")))
    assert summary.failed == 0
    b1, b2, i1, i2, fx, fy = _ids(
        minter,
        ("Work", "sierra-system-number", "b1"),
        ("Work", "sierra-system-number", "b2"),
        ("Item", "sierra-system-number", "i1"),
        ("Item", "sierra-system-number", "i2"),
        ("Item", "folio-item", "fx"),
        ("Item", "folio-item", "fy"),
    )
    assert (fx, fy) == (i1, i2)
    assert _item_ids(store, b2) == {"fx": i1, "fy": i2}
    # b1 is no predecessor of f2's work: its document stays its own, and an update is written.
    assert _item_ids(store, b1) == {"i1": i1}
    again = _run(store, minter, _sierra("b1", "i1", at="2026-07-30T10:00:00.000Z"))
    assert again.works_written == 1 and again.works_superseded == 0
    assert (
        _run(store, minter, _sierra("b2", "i2", at="2026-07-30T10:00:00.000Z"))
        .superseded[0]
        .held_by
        == "Work[folio-instance/f2]"
    )


def test_an_item_predecessor_arriving_before_its_work_fails_that_work_until_it_is_minted(
    store, minter
):
    folio = _folio_work("f1", "b1", ("fa", "i1"))
    early = _run(store, minter, folio, _sierra("b7", "i7"))
    assert early.works_written == 1
    [failure] = early.failures
    assert (failure.work_id, failure.stage) == ("Work[folio-instance/f1]", Stage.MINT)
    assert failure.detail == (
        "state.predecessorIdentifier (Work[folio-instance/f1]): predecessor "
        "Work[sierra-system-number/b1] is not in the registry (mint it first, or fix the "
        "document); data.items[0].id.predecessorIdentifier (Item[folio-item/fa]): predecessor "
        "Item[sierra-system-number/i1] is not in the registry (mint it first, or fix the document)"
    )
    assert _ids(minter, ("Item", "folio-item", "fa")) == [None], "nothing of f1 was minted"

    assert _run(store, minter, _sierra("b1", "i1")).failed == 0
    later = _run(store, minter, folio)
    assert later.failed == 0 and later.inherited == 2
    fa, i1 = _ids(minter, ("Item", "folio-item", "fa"), ("Item", "sierra-system-number", "i1"))
    assert fa == i1


def test_item_predecessors_emitted_before_the_works_keep_the_items_and_record_the_works_late_one(
    store, minter, registry
):
    """A transformer emitting item predecessors before the work's: the record is minted as new
    (its items keep their Sierra IDs); the work's predecessor declared later cannot move a
    registered mapping, and is recorded as a mismatch for people to resolve."""
    assert _run(store, minter, _sierra("b1", "i1")).failed == 0
    first = _run(store, minter, _folio_work("f1", None, ("fa", "i1")))
    assert first.failed == 0 and (first.minted, first.inherited) == (1, 1)
    f1, fa, b1, i1 = _ids(
        minter,
        ("Work", "folio-instance", "f1"),
        ("Item", "folio-item", "fa"),
        ("Work", "sierra-system-number", "b1"),
        ("Item", "sierra-system-number", "i1"),
    )
    assert fa == i1 and f1 != b1

    later = _run(
        store, minter, _folio_work("f1", "b1", ("fa", "i1"), at="2026-07-30T10:00:00.000Z")
    )
    assert later.failed == 0 and later.works_written == 1 and later.existing == 2
    assert _ids(minter, ("Work", "folio-instance", "f1"), ("Item", "folio-item", "fa")) == [f1, fa]
    rows = fetch_all(
        registry,
        "SELECT SuccessorSourceId, PredecessorSourceId, CanonicalId, PredecessorCanonicalId "
        "FROM identifier_provenance WHERE Kind = 'predecessor_mismatch'",
    )
    assert [tuple(r) for r in rows] == [("f1", "b1", f1, b1)]


def test_an_item_predecessor_later_in_the_same_batch_is_enough(store, minter):
    summary = _run(
        store,
        minter,
        _folio_work("f1", "b1", ("fa", "i1"), at="2026-07-30T09:00:00.000Z"),
        _sierra("b1", "i1", at="2026-07-30T09:00:05.000Z"),
    )
    assert summary.failed == 0 and summary.mint_calls == 1
    fa, i1 = _ids(minter, ("Item", "folio-item", "fa"), ("Item", "sierra-system-number", "i1"))
    assert fa == i1 is not None


def test_a_missing_item_predecessor_fails_its_work_alone_and_holds_back_the_item(store, minter):
    summary = _run(
        store,
        minter,
        _folio_work("f1", None, ("fa", "i-never")),
        # Carries the same Folio item without naming its predecessor: minting it here would
        # give the item a new ID for good.
        _work("folio-instance", "f2", items=[("folio-item", "fa")]),
        _sierra("b5", "i5"),
    )
    assert summary.mint_calls == 2 and summary.works_written == 1
    details = {f.work_id: f.detail for f in summary.failures}
    assert details["Work[folio-instance/f1]"].startswith(
        "data.items[0].id.predecessorIdentifier (Item[folio-item/fa]): predecessor "
        "Item[sierra-system-number/i-never] is not in the registry"
    )
    assert details["Work[folio-instance/f2]"] == (
        "carries Item[folio-item/fa], whose predecessor as named by Work[folio-instance/f1] was "
        "refused; it is not minted without it"
    )
    assert _ids(minter, ("Item", "folio-item", "fa")) == [None]


def test_two_works_naming_different_predecessors_for_one_item_both_fail_naming_each_other(
    store, minter
):
    assert _run(store, minter, _sierra("b1", "i1", "i2")).failed == 0
    summary = _run(
        store,
        minter,
        _folio_work("f1", None, ("fa", "i1")),
        _folio_work("f2", None, ("fa", "i2")),
        _folio_work("f3", None, ("fc", "i2")),
    )
    assert summary.works_written == 1 and summary.mint_calls == 1
    details = {f.work_id: f.detail for f in summary.failures}
    assert details == {
        "Work[folio-instance/f1]": (
            "data.items[0].id.predecessorIdentifier: Item[folio-item/fa] is given predecessor "
            "Item[sierra-system-number/i1] here, but Item[sierra-system-number/i2] by "
            "Work[folio-instance/f2] in the same batch"
        ),
        "Work[folio-instance/f2]": (
            "data.items[0].id.predecessorIdentifier: Item[folio-item/fa] is given predecessor "
            "Item[sierra-system-number/i2] here, but Item[sierra-system-number/i1] by "
            "Work[folio-instance/f1] in the same batch"
        ),
    }
    assert _ids(minter, ("Item", "folio-item", "fa")) == [None]


def test_item_predecessors_looping_across_works_fail_those_works_naming_both(store, minter):
    summary = _run(
        store,
        minter,
        _work("folio-instance", "f1", items=[("folio-item", "x", ("folio-item", "y"))]),
        _work("folio-instance", "f2", items=[("folio-item", "y", ("folio-item", "x"))]),
        _sierra("b5", "i5"),
    )
    assert summary.works_written == 1
    details = {f.work_id: f.detail for f in summary.failures}
    assert sorted(details) == ["Work[folio-instance/f1]", "Work[folio-instance/f2]"]
    for detail in details.values():
        assert (
            "predecessor cycle: Item[folio-item/x] -> Item[folio-item/y] -> Item[folio-item/x]"
            in detail
        )
        assert detail.endswith(
            "(declared across works Work[folio-instance/f1], Work[folio-instance/f2])"
        )


# -- shadow mode --------------------------------------------------------------------------------


def _legacy_reference(path, document, work_id, ids):
    """A reference store holding `document` as a minter without inheritance wrote it: `ids`
    maps each source value to the canonical ID it gave."""
    legacy = copy.deepcopy(document)
    stack = [legacy]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "sourceIdentifier" in value:
                value["canonicalId"] = ids[value["sourceIdentifier"]["value"]]
                if "identifiedType" in value:
                    value["type"] = value.pop("identifiedType")
            stack.extend(v for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend(value)
    with SqliteWorksStore(path) as reference:
        reference.write_identified([IdentifiedWork(ids["f1"], work_id, legacy)])
    return SqliteReference(path)


def test_shadow_mode_expects_item_ids_inherited_where_the_legacy_minter_minted_new_ones(
    store, minter, connect_registry, tmp_path
):
    assert _run(store, minter, _sierra("b1", "i1")).failed == 0
    folio = _folio_work("f1", "b1", ("fa", "i1"), ("fb", None))
    store.put_source([folio])
    b1, i1 = _ids(
        minter, ("Work", "sierra-system-number", "b1"), ("Item", "sierra-system-number", "i1")
    )

    def shadow(name, ids):
        reference = _legacy_reference(tmp_path / name, folio.document, folio.id, ids)
        report = shadow_run(store, reference, connect_registry, IdsScope((folio.id,)))
        return report.as_dict()

    # The legacy minter gave the Folio work and its item IDs of their own; fb it never saw.
    report = shadow("legacy.sqlite3", {"f1": "legacyf1", "fa": "legacyfa", "fb": "legacyfb"})
    assert report["counts"]["would_mint"] == 1  # fb is new: this minter would mint it
    # With fb registered, the only differences left are the inherited IDs: expected.
    minter.mint_ids([MintRequest(SI("Item", "folio-item", "fb"))])
    [fb] = _ids(minter, ("Item", "folio-item", "fb"))
    report = shadow("legacy2.sqlite3", {"f1": "legacyf1", "fa": "legacyfa", "fb": fb})
    assert report["counts"]["differ_expected"] == 1, report
    assert [(d["path"], d["ours"], d["theirs"]) for d in report["expected_differences"]] == [
        ("data.items[0].id.canonicalId", i1, "legacyfa"),
        ("state.canonicalId", b1, "legacyf1"),
    ]
    # An item ID the inheritance does not explain is unexpected.
    report = shadow("legacy3.sqlite3", {"f1": "legacyf1", "fa": "legacyfa", "fb": "otherfb2"})
    assert report["counts"]["differ_unexpected"] == 1
    assert [d["path"] for d in report["unexpected_differences"]] == [
        "data.items[0].id.canonicalId",
        "data.items[1].id.canonicalId",
        "state.canonicalId",
    ]
    # A reference written by a minter that inherits on items too (the reference port) agrees.
    report = shadow("port.sqlite3", {"f1": b1, "fa": i1, "fb": fb})
    assert report["counts"]["agree"] == 1


def test_a_cycle_through_two_links_of_one_work_names_each_of_its_places(store, minter):
    summary = _run(
        store,
        minter,
        _work(
            "folio-instance",
            "f1",
            items=[
                ("folio-item", "x", ("folio-item", "y")),
                ("folio-item", "y", ("folio-item", "z")),
            ],
        ),
        _work("folio-instance", "f2", items=[("folio-item", "z", ("folio-item", "x"))]),
    )
    assert summary.works_written == 0
    details = {f.work_id: f.detail for f in summary.failures}
    assert details["Work[folio-instance/f1]"].startswith("data.items[0].id.predecessorIdentifier: ")
    assert (
        "; data.items[1].id.predecessorIdentifier: predecessor cycle"
        in details["Work[folio-instance/f1]"]
    )
    assert details["Work[folio-instance/f2]"].startswith("data.items[0].id.predecessorIdentifier: ")
    assert _ids(minter, ("Item", "folio-item", "x")) == [None]


def test_node_predecessors_count_towards_the_per_work_identifier_limit(monkeypatch):
    monkeypatch.setattr(documents, "MAX_IDENTIFIERS_PER_WORK", 4)
    items = [_id("folio-item", "Item", "f1"), _id("folio-item", "Item", "f2")]
    assert len(extract_work(_folio(items, predecessor=None), document_id="x").identifiers) == 3
    # Two items and the work are three identifiers; their two predecessors make five.
    inheriting = [
        _id("folio-item", "Item", f"f{n}", _si("sierra-system-number", "Item", f"i{n}"))
        for n in (1, 2)
    ]
    detail = _extract_failure(_folio(inheriting, predecessor=None))
    assert detail.startswith("carries 5 distinct source identifiers; at most 4 per work")
