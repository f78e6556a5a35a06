"""Taking over from the reference port, end to end, in the runbook's order
(docs/operations/takeover-from-the-port.md): a registry the port created and filled, an
identified store the port wrote; the adoption's dry run, the decision on case variants, the
adoption held synced, a shadow run against the port's output, the swap; Folio works whose items
inherit Sierra item IDs, minted through this project's Lambda handler from the port's own
events; then every (source, canonical ID) pair published before the takeover, all of them,
still holds."""

from __future__ import annotations

import copy
import json
import random
import sqlite3
from typing import Any

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from legacy_helpers import random_id, scratch_database
from port_helpers import SPECIAL_ROWS, Row, create_port_registry, generated_rows
from works_helpers import fill_pool, node, si, use_embedded_store

from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.cli import main
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.works.documents import IdentifiedWork, SourceWork
from idminter_pipeline.works.stores import SqliteWorksStore

SIERRA = "sierra-system-number"
WORKS = 2_000
# Folio successors minted by the port's window event, and by its sourceIdentifiers request.
BY_WINDOW = range(0, 40)
BY_IDS = range(40, 60)
BEFORE = "2026-07-30T08:00:00.000Z"
IN_WINDOW = "2026-07-30T09:50:00.000Z"
WINDOW_END = "2026-07-30T10:00:00Z"
# The port merged this case variant with the registered b1161044x and published its ID for it.
VARIANT = ("sierra-system-number", "B1161044X", "ab2c3d4e")


def _item_rows(works: list[Row], seed: int = 83) -> list[Row]:
    """One Sierra item per work, each with an ID of its own, as the port registered them."""
    rng = random.Random(seed)
    taken = {canonical for *_, canonical in works}
    rows = []
    for _, _, source, _ in works:
        canonical = random_id(rng)
        while canonical in taken:
            canonical = random_id(rng)
        taken.add(canonical)
        rows.append(("Item", SIERRA, f"i{source[1:]}", canonical))
    return rows


def _sierra_work(number: str, items: list[str]) -> dict[str, Any]:
    return {
        "version": 1,
        "type": "Visible",
        "indexed_at": BEFORE,
        "data": {"items": [{"id": node(SIERRA, "Item", item)} for item in items]},
        "state": {"sourceIdentifier": si(SIERRA, "Work", number)},
    }


def _as_the_port_annotates(document: dict[str, Any], ids: dict[tuple, str]) -> dict[str, Any]:
    """The port's identified document: every identifiable node given its canonical ID."""
    identified = copy.deepcopy(document)
    state = identified["state"]
    source = state["sourceIdentifier"]
    state["canonicalId"] = ids[("Work", source["identifierType"]["id"], source["value"])]
    for item in identified["data"]["items"]:
        item_id = item["id"]
        source = item_id["sourceIdentifier"]
        item_id["canonicalId"] = ids[("Item", source["identifierType"]["id"], source["value"])]
        item_id["type"] = item_id.pop("identifiedType")
    return identified


def _folio_successor(index: int) -> SourceWork:
    """A Folio work naming its Sierra work, its Folio item naming the Sierra item."""
    item = node("folio-item", "Item", f"it{index:08d}")
    item["predecessorIdentifier"] = si(SIERRA, "Item", f"i{index:08d}")
    document = {
        "version": 1,
        "type": "Visible",
        "indexed_at": IN_WINDOW if index in BY_WINDOW else BEFORE,
        "data": {"items": [{"id": item}]},
        "state": {
            "sourceIdentifier": si("folio-instance", "Work", f"in{index:08d}"),
            "predecessorIdentifier": si(SIERRA, "Work", f"b{index:08d}"),
        },
    }
    return SourceWork(f"Work[folio-instance/in{index:08d}]", document)


def _write_the_ports_store(path, rows: list[Row]) -> None:
    """The transformers' source works and the port's identified documents for them (one work
    arriving in the case variant the port merged)."""
    ids = {(ontology, system, source): canonical for ontology, system, source, canonical in rows}
    ids[("Work", *VARIANT[:2])] = VARIANT[2]
    sources = [(f"b{index:08d}", [f"i{index:08d}"]) for index in range(WORKS)] + [(VARIANT[1], [])]
    with SqliteWorksStore(path) as store:
        works = [SourceWork(f"Work[{SIERRA}/{n}]", _sierra_work(n, items)) for n, items in sources]
        store.put_source(works)
        failures = store.write_identified(
            [
                IdentifiedWork(
                    ids[("Work", SIERRA, number)],
                    f"Work[{SIERRA}/{number}]",
                    _as_the_port_annotates(_sierra_work(number, items), ids),
                )
                for number, items in sources
            ]
        )
        assert not failures


def _published_pairs(store_path) -> set[tuple[str, str, str, str]]:
    """Every (source, canonical ID) pair the port's identified documents carry, every node's."""
    pairs = set()
    with sqlite3.connect(store_path) as db:
        documents = [
            json.loads(text) for (text,) in db.execute("SELECT document FROM identified_works")
        ]
    db.close()
    for document in documents:
        nodes = [document["state"]] + [item["id"] for item in document["data"]["items"]]
        for identified in nodes:
            source = identified["sourceIdentifier"]
            pairs.add(
                (
                    source["ontologyType"],
                    source["identifierType"]["id"],
                    source["value"],
                    identified["canonicalId"],
                )
            )
    return pairs


def _identified_owners(store_path) -> dict[str, str]:
    with sqlite3.connect(store_path) as db:
        owners = dict(db.execute("SELECT canonical_id, source_id FROM identified_works"))
    db.close()
    return owners


def _registry_pairs(settings) -> set[tuple[str, str, str, str]]:
    return set(
        fetch_all(
            settings,
            "SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM identifiers",
        )
    )


def _cli(*args: str, exit_code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == exit_code, result.output
    return result.stdout


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {category: count for category, count in counts.items() if count}


@pytest.fixture
def port_database(server_settings):
    yield from scratch_database(server_settings)


def test_a_takeover_keeps_every_published_id(port_database, tmp_path, monkeypatch):
    works = generated_rows(WORKS)
    rows = SPECIAL_ROWS + works + _item_rows(works)
    create_port_registry(port_database, rows)
    for name, value in port_database.as_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIPELINE_DATE", "2026-07-30")
    monkeypatch.delenv("S3_BUCKET", raising=False)
    store_path = use_embedded_store(monkeypatch, tmp_path)
    _write_the_ports_store(store_path, rows)

    # Before the takeover: every pair the registry holds and every pair the documents carry.
    published = _registry_pairs(port_database) | _published_pairs(store_path)
    owners_before = _identified_owners(store_path)
    assert len(published) == len(rows) + 1  # the variant: published, not registered
    assert len(owners_before) == WORKS + 1

    # 1. Dry run: nothing written; the one variant in use needs a person's decision.
    report = json.loads(_cli("db", "adopt", "--dry-run", "--json", exit_code=3))
    assert report["mappings"] == len(rows)
    assert report["needs_decision"] is True and report["blocking"] is False
    assert [v["source"] for v in report["variants_in_use"]] == [f"Work[{SIERRA}/{VARIANT[1]}]"]
    assert _registry_pairs(port_database) == published - {("Work", *VARIANT)}

    # 2. The decision: register the variant to the ID the port published for it.
    variants_file = tmp_path / "variants.jsonl"
    variants_file.write_text(_cli("db", "adopt-variants", exit_code=3))

    # 3. Copied, verified, held synced: the shadow reads the copy and agrees with the port.
    held = json.loads(_cli("db", "adopt", "--hold-synced", "--json"))
    assert held["status"] == "copied and verified; not swapped", held
    shadow = json.loads(_cli("shadow", "--full", "--reference", str(store_path)))
    assert shadow["counts"]["differ_unexpected"] == 0, shadow["unexpected_differences"]
    # The variant is not registered until the swap: until then it would be minted.
    assert _nonzero(shadow["counts"]) == {"agree": WORKS, "would_mint": 1}, shadow["counts"]
    assert shadow["registry"]["table"] == "identifiers_new"  # the verified copy
    assert shadow["would_mint_in_reference"] == 1

    # 4. The swap, registering the variant.
    swapped = json.loads(_cli("db", "adopt", "--register-variants", str(variants_file), "--json"))
    assert swapped["status"] == "swapped" and swapped["variants_registered"] == 1, swapped
    shadow = json.loads(_cli("shadow", "--full", "--reference", str(store_path)))
    assert _nonzero(shadow["counts"]) == {"agree": WORKS + 1}, shadow["counts"]

    # 5. The port's events, unchanged, through this project's handler: Folio works whose items
    # inherit their Sierra items' IDs.
    fill_pool(lambda: connect(port_database), 200)
    with SqliteWorksStore(store_path) as store:
        store.put_source([_folio_successor(index) for index in [*BY_WINDOW, *BY_IDS]])
    by_window = handler({"window": {"endTime": WINDOW_END}}, None)
    assert by_window["job_id"]  # generated: the port's request had none
    assert (by_window["success_count"], by_window["failure_count"]) == (len(BY_WINDOW), 0)
    by_ids = handler(
        {"sourceIdentifiers": [f"folio-instance/in{index:08d}" for index in BY_IDS]}, None
    )
    assert by_ids["job_id"] and by_ids["job_id"] != by_window["job_id"]
    assert (by_ids["success_count"], by_ids["failure_count"]) == (len(BY_IDS), 0)

    # 6. Counted, not sampled: every pair published before names the same record after.
    after = _registry_pairs(port_database)
    assert published <= after, sorted(published - after)[:20]
    successors = {("Work", "folio-instance", f"in{i:08d}") for i in [*BY_WINDOW, *BY_IDS]} | {
        ("Item", "folio-item", f"it{i:08d}") for i in [*BY_WINDOW, *BY_IDS]
    }
    new_pairs = after - published
    assert {pair[:3] for pair in new_pairs} == successors
    ids_before = {canonical for *_, canonical in published}
    assert {pair[3] for pair in new_pairs} <= ids_before  # inherited, none minted anew
    inherited = {(o, s, v): c for o, s, v, c in after}
    for index in [*BY_WINDOW, *BY_IDS]:
        assert (
            inherited[("Work", "folio-instance", f"in{index:08d}")]
            == inherited[("Work", SIERRA, f"b{index:08d}")]
        )
        assert (
            inherited[("Item", "folio-item", f"it{index:08d}")]
            == inherited[("Item", SIERRA, f"i{index:08d}")]
        )
    # Every document published before is still there under its ID: the same work's, or (for
    # a succeeded work) its Folio successor's.
    owners_after = _identified_owners(store_path)
    assert set(owners_before) <= set(owners_after)
    moved = {cid for cid, source in owners_before.items() if owners_after[cid] != source}
    assert {owners_after[cid] for cid in moved} == {
        f"Work[folio-instance/in{index:08d}]" for index in [*BY_WINDOW, *BY_IDS]
    }
