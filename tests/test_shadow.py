"""`idminter shadow`: a reference built by real minting, with planted differences, compared through
the real CLI against the real registry; nothing may change in the registry, the pool, the works
store or the reference."""

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from registry_invariants import registry_snapshot
from works_helpers import fill_pool, node, si, work

from idminter_pipeline.cli import main
from idminter_pipeline.works.shadow.compare import Category, compare_work, is_placeholder
from idminter_pipeline.works.stores import SqliteWorksStore

SIERRA = "sierra-system-number"


@pytest.fixture
def works_env(works_store_env, connect_registry):
    fill_pool(connect_registry, 500)
    return works_store_env


def _stamp(minute: int) -> str:
    return f"2026-07-30T09:{minute:02d}:00.000Z"


def _invoke(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _mint(*args):
    result = _invoke("mint", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _tables(path):
    """Every row of every table of a SQLite file, to compare before and after."""
    with sqlite3.connect(path) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        contents = {name: sorted(db.execute(f"SELECT * FROM {name}").fetchall()) for name in names}
    db.close()
    return contents


def _reference_rows(path):
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT canonical_id, source_id, document FROM identified_works")
        found = {source: (cid, json.loads(doc)) for cid, source, doc in rows}
    db.close()
    return found


def _put_reference(path, canonical_id, source_id, document, *, replacing=None):
    with sqlite3.connect(path) as db:
        if replacing is not None:
            db.execute("DELETE FROM identified_works WHERE canonical_id = ?", (replacing,))
        db.execute(
            "INSERT OR REPLACE INTO identified_works (canonical_id, source_id, document) "
            "VALUES (?, ?, ?)",
            (canonical_id, source_id, json.dumps(document)),
        )
    db.close()


@pytest.fixture
def planted(works_env, tmp_path):
    """Works minted for real, a reference copied from their identified table, and one planted
    change per category. Returns the reference path and the expected category of each work."""
    items = {f"b{n}": (f"i-{n}a", f"i-{n}b") for n in range(1, 8)}
    legacy = [work(SIERRA, v, indexed_at=_stamp(n), items=items[v]) for n, v in enumerate(items)]
    with SqliteWorksStore(works_env) as store:
        store.put_source(legacy)
    _mint("--window-start", _stamp(0), "--window-end", _stamp(30))
    reference = tmp_path / "legacy-identified.sqlite3"
    shutil.copyfile(works_env, reference)

    # After the reference was taken: a Folio successor of b1 (inherits b1's ID, minted for
    # real), and a new work nobody minted yet.
    successor = work("folio-instance", "f1", indexed_at=_stamp(40), predecessor=(SIERRA, "b1"))
    brand_new = work(SIERRA, "b-new", indexed_at=_stamp(41), items=("i-new",))
    with SqliteWorksStore(works_env) as store:
        store.put_source([successor, brand_new])
    _mint("--source-identifiers", successor.id)

    rows = _reference_rows(reference)
    # The legacy minter gave the successor an ID of its own: the expected difference.
    with SqliteWorksStore(works_env) as store:
        ours = next(
            doc for doc in store.get_identified([rows["Work[sierra-system-number/b1]"][0]]).values()
        )
    theirs = json.loads(json.dumps(ours))
    theirs["state"]["canonicalId"] = "legacyf1"
    _put_reference(reference, "legacyf1", successor.id, theirs)
    # b2: a nested (item) ID differs.
    cid, doc = rows["Work[sierra-system-number/b2]"]
    doc = json.loads(json.dumps(doc))
    doc["data"]["items"][1]["id"]["canonicalId"] = "zzzitem1"
    _put_reference(reference, cid, "Work[sierra-system-number/b2]", doc)
    # b3: a document field outside canonical IDs differs.
    cid, doc = rows["Work[sierra-system-number/b3]"]
    doc = json.loads(json.dumps(doc))
    doc["type"] = "Invisible"
    _put_reference(reference, cid, "Work[sierra-system-number/b3]", doc)
    # b4: the root ID differs, with no predecessor to explain it (stored under the legacy ID).
    cid, doc = rows["Work[sierra-system-number/b4]"]
    doc = json.loads(json.dumps(doc))
    doc["state"]["canonicalId"] = "legacyb4"
    _put_reference(reference, "legacyb4", "Work[sierra-system-number/b4]", doc, replacing=cid)
    # b5: the legacy minter has not written it yet.
    with sqlite3.connect(reference) as db:
        db.execute("DELETE FROM identified_works WHERE canonical_id = ?", (rows[legacy[4].id][0],))
    db.close()

    expected = {
        legacy[0].id: Category.AGREE,
        legacy[5].id: Category.AGREE,
        legacy[6].id: Category.AGREE,
        successor.id: Category.DIFFER_EXPECTED,
        legacy[1].id: Category.DIFFER_UNEXPECTED,
        legacy[2].id: Category.DIFFER_UNEXPECTED,
        legacy[3].id: Category.DIFFER_UNEXPECTED,
        legacy[4].id: Category.NOT_IN_REFERENCE,
        brand_new.id: Category.WOULD_MINT,
    }
    return reference, expected, rows


def test_each_work_lands_in_its_category_and_only_planted_differences_are_unexpected(
    planted, works_env, registry
):
    reference, expected, rows = planted
    registry_before = registry_snapshot(registry)
    store_before = _tables(works_env)
    reference_before = _tables(reference)
    reference_bytes = reference.read_bytes()

    result = _invoke("shadow", "--full", "--reference", str(reference))

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    wanted_counts = {category.value: 0 for category in Category}
    for category in expected.values():
        wanted_counts[category.value] += 1
    assert report["counts"] == wanted_counts
    assert report["works_read"] == len(expected)
    assert report["written"] == 0
    differences = {
        (d["work"], d["path"]): (d["ours"], d["theirs"]) for d in report["unexpected_differences"]
    }
    b2_item = rows["Work[sierra-system-number/b2]"][1]["data"]["items"][1]["id"]["canonicalId"]
    b4_root = rows["Work[sierra-system-number/b4]"][0]
    assert differences == {
        ("Work[sierra-system-number/b2]", "data.items[1].id.canonicalId"): (b2_item, "zzzitem1"),
        ("Work[sierra-system-number/b3]", "type"): ("Visible", "Invisible"),
        ("Work[sierra-system-number/b4]", "state.canonicalId"): (b4_root, "legacyb4"),
    }
    b1_root = rows["Work[sierra-system-number/b1]"][0]
    assert report["expected_differences"] == [
        {
            "work": "Work[folio-instance/f1]",
            "path": "state.canonicalId",
            "ours": b1_root,
            "theirs": "legacyf1",
        }
    ]
    assert report["identifiers"]["would_mint"] == 2  # b-new and its item
    assert report["registry"]["table"] == "identifiers"

    # Nothing was written anywhere: every registry row (pool included), both stores' tables.
    assert registry_snapshot(registry) == registry_before
    assert _tables(works_env) == store_before
    assert _tables(reference) == reference_before
    assert reference.read_bytes() == reference_bytes


def test_a_scope_without_unexpected_differences_exits_0(planted):
    reference, expected, _ = planted
    calm = [w for w, c in expected.items() if c in (Category.AGREE, Category.DIFFER_EXPECTED)]
    result = _invoke("shadow", "--source-identifiers", *calm, "--reference", str(reference))
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert counts["agree"] == 3
    assert counts["differ_expected"] == 1
    assert counts["differ_unexpected"] == 0


def test_a_window_scope_compares_only_its_works(planted):
    reference, _, _ = planted
    result = _invoke(
        "shadow",
        "--window-start",
        _stamp(40),
        "--window-end",
        _stamp(45),
        "--reference",
        str(reference),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["works_read"] == 2
    assert report["counts"]["differ_expected"] == 1
    assert report["counts"]["would_mint"] == 1


def test_a_work_this_minter_would_fail_is_an_unexpected_difference(planted, works_env):
    reference, _, _ = planted
    orphan = work("folio-instance", "f-orphan", predecessor=(SIERRA, "b-never-registered"))
    with SqliteWorksStore(works_env) as store:
        store.put_source([orphan])
    result = _invoke("shadow", "--source-identifiers", orphan.id, "--reference", str(reference))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["differ_unexpected"] == 1
    (difference,) = report["unexpected_differences"]
    assert difference["work"] == orphan.id
    assert difference["path"] == "(work)"
    assert "would fail at mint" in difference["ours"]
    assert "b-never-registered" in difference["ours"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--full"], "give exactly one reference"),
        (["--full", "--reference", "/nonexistent/ref.sqlite3"], "no such file"),
        (["--reference", "x.sqlite3"], "give exactly one scope"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(works_env, args, message):
    result = _invoke("shadow", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_reference_that_is_not_a_works_store_is_refused(works_env, tmp_path):
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_bytes(b"not a database at all, just text" * 10)
    result = _invoke("shadow", "--full", "--reference", str(bogus))
    assert result.exit_code == 2
    assert "error: --reference" in result.output
    assert bogus.read_bytes() == b"not a database at all, just text" * 10


def test_a_missing_works_store_is_refused_not_created(planted, tmp_path, monkeypatch):
    reference, _, _ = planted
    missing = tmp_path / "mistyped" / "works.sqlite3"
    monkeypatch.setenv("WORKS_STORE_PATH", str(missing))
    result = _invoke("shadow", "--full", "--reference", str(reference))
    assert result.exit_code == 2
    assert f"error: works store {missing}: no such file" in result.output
    assert "Traceback" not in result.output
    assert not missing.exists()
    assert not missing.parent.exists()


def test_placeholders_never_look_like_canonical_ids():
    ours = {"state": {"canonicalId": "would-mint:1", "sourceIdentifier": {}}}
    assert is_placeholder("would-mint:1")
    assert not is_placeholder("abcd2345")
    # A would-mint document is never compared, even when the reference has the work.
    theirs = {"state": {"canonicalId": "abcd2345", "sourceIdentifier": {}}}
    assert compare_work("w", ours, theirs).category is Category.WOULD_MINT


def _identified(system, ontology, value, canonical_id):
    return {**node(system, ontology, value), "canonicalId": canonical_id, "type": "Identified"}


def test_a_root_difference_is_expected_only_when_ours_is_the_predecessors_id():
    state = {"sourceIdentifier": si("folio-instance", "Work", "f1")}
    ours = {"state": {**state, "canonicalId": "pred0001"}, "data": {"items": []}}
    theirs = {"state": {**state, "canonicalId": "legacy01"}, "data": {"items": []}}
    inherits = {"Work[folio-instance/f1]": "pred0001"}
    assert compare_work("w", ours, theirs, predecessor_ids=inherits).category is (
        Category.DIFFER_EXPECTED
    )
    assert compare_work(
        "w", ours, theirs, predecessor_ids={"Work[folio-instance/f1]": "other001"}
    ).category is (Category.DIFFER_UNEXPECTED)
    assert compare_work("w", ours, theirs).category is Category.DIFFER_UNEXPECTED
    # The root difference plus anything else is unexpected, and both paths are named.
    theirs_too = {
        "state": {**state, "canonicalId": "legacy01"},
        "data": {"items": [node("s", "Item", "i")]},
    }
    comparison = compare_work("w", ours, theirs_too, predecessor_ids=inherits)
    assert comparison.category is Category.DIFFER_UNEXPECTED
    assert [d.path for d in comparison.differences] == ["data.items", "state.canonicalId"]


def test_item_and_image_ids_are_compared_and_expected_only_where_they_inherit():
    def document(item_id, image_id, other_item_id):
        return {
            "state": {"sourceIdentifier": si("folio-instance", "Work", "f1"), "canonicalId": "w1"},
            "data": {
                "items": [
                    {"id": _identified("folio-item", "Item", "fa", item_id)},
                    {"id": _identified("folio-item", "Item", "fb", other_item_id)},
                ],
                "imageData": [{"id": _identified("mets-image", "Image", "m/1", image_id)}],
            },
        }

    inherits = {"Item[folio-item/fa]": "itemsrr1", "Image[mets-image/m/1]": "imagemr1"}
    theirs = document("legacyi1", "legacym1", "legacyi2")
    # The port inherits too: the same IDs everywhere.
    ours = document("itemsrr1", "imagemr1", "legacyi2")
    assert compare_work("w", ours, ours, predecessor_ids=inherits).category is Category.AGREE
    expected = compare_work("w", ours, theirs, predecessor_ids=inherits)
    assert expected.category is Category.DIFFER_EXPECTED
    assert [(d.path, d.ours, d.theirs) for d in expected.differences] == [
        ("data.imageData[0].id.canonicalId", "imagemr1", "legacym1"),
        ("data.items[0].id.canonicalId", "itemsrr1", "legacyi1"),
    ]
    # A key only one side has is a difference, even with null on the other.
    theirs_extra = document("legacyi1", "legacym1", "legacyi2")
    theirs_extra["state"]["note"] = None
    extra = compare_work("w", ours, theirs_extra, predecessor_ids=inherits)
    assert extra.category is Category.DIFFER_UNEXPECTED
    # An item ID that is not its predecessor's, or an item that inherits nothing, differs
    # unexpectedly, and the inherited ones are named beside it.
    wrong = compare_work(
        "w", document("itemsrr9", "imagemr1", "legacyi2"), theirs, predecessor_ids=inherits
    )
    assert wrong.category is Category.DIFFER_UNEXPECTED
    unexplained = compare_work(
        "w", document("itemsrr1", "imagemr1", "newid002"), theirs, predecessor_ids=inherits
    )
    assert unexplained.category is Category.DIFFER_UNEXPECTED
    assert [d.path for d in unexplained.differences] == [
        "data.imageData[0].id.canonicalId",
        "data.items[0].id.canonicalId",
        "data.items[1].id.canonicalId",
    ]


def test_a_shadow_run_never_waits_for_a_minters_row_locks(works_env, connect_registry, tmp_path):
    """A minter holds an uncommitted insert of the very key the shadow looks up: the shadow's
    plain consistent read does not wait for it (a locking read would wait, then time out)."""
    pending = work(SIERRA, "b-locked", indexed_at=_stamp(50))
    with SqliteWorksStore(works_env) as store:
        store.put_source([pending])
    reference = tmp_path / "empty-reference.sqlite3"
    SqliteWorksStore(reference).close()
    minter = connect_registry()
    try:
        with minter.cursor() as cursor:
            cursor.execute(
                "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' LIMIT 1 FOR UPDATE"
            )
            (free_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "VALUES ('Work', %s, 'b-locked', %s)",
                (SIERRA, free_id),
            )
        result = _invoke(
            "shadow", "--source-identifiers", pending.id, "--reference", str(reference)
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["counts"]["would_mint"] == 1  # the uncommitted row is not visible
    finally:
        minter.rollback()
        minter.close()


def test_an_unreadable_reference_document_is_an_unexpected_difference(planted):
    reference, _, rows = planted
    work_id = "Work[sierra-system-number/b6]"
    with sqlite3.connect(reference) as db:
        db.execute(
            "UPDATE identified_works SET document = ? WHERE canonical_id = ?",
            ('{"state": {not json', rows[work_id][0]),
        )
    db.close()
    result = _invoke("shadow", "--source-identifiers", work_id, "--reference", str(reference))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (difference,) = [d for d in report["unexpected_differences"] if d["theirs"] is not None]
    assert difference["path"] == "(unreadable reference document)"
    assert "not valid JSON" in difference["theirs"]
