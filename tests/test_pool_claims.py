"""What a claim takes from the pool: never an ID a mapping already uses (the pool is not trusted
blindly; such an ID is marked assigned and reported), and free IDs from a random point of the
pool, wrapping around, so IDs minted together or one after another do not reveal their order.
Against the real server."""

from __future__ import annotations

import logging

from db_helpers import fetch_all, run_statements
from minting_helpers import fill_pool, work

from idminter_pipeline.registry import reconciliation as rc
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest
from idminter_pipeline.registry.minting import claims as claims_module


def _start_claims_at(monkeypatch, start: str) -> None:
    # raising=False: where claims do not start at a random point, the claim ignores it.
    monkeypatch.setattr(claims_module, "generate_canonical_id", lambda *_: start, raising=False)


def _status(settings, canonical_id):
    return fetch_all(
        settings, "SELECT Status FROM canonical_ids WHERE CanonicalId = %s", (canonical_id,)
    )[0][0]


def test_a_claim_never_hands_out_an_id_a_mapping_uses(
    registry, connect_registry, monkeypatch, caplog
):
    # A corrupted pool: 'aaaa2222' is free, yet b1 holds it (a bad restore, a hand edit).
    run_statements(
        registry,
        "INSERT INTO canonical_ids (CanonicalId, Status) VALUES "
        "('aaaa2222', 'free'), ('aaaa3333', 'free'), ('bbbb2222', 'free'), ('cccc2222', 'free')",
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        "VALUES ('Work', 'sierra-system-number', 'b1', 'aaaa2222')",
    )
    _start_claims_at(monkeypatch, "aaaa2222")
    new = [work("calm-record-id", f"new-{n}") for n in range(2)]
    with caplog.at_level(logging.WARNING), Minter(connect_registry) as minter:
        results = minter.mint_ids([MintRequest(source) for source in new])

    handed = {results[source].canonical_id for source in new}
    assert "aaaa2222" not in handed
    assert handed == {"aaaa3333", "bbbb2222"}
    assert {r.outcome for r in results.values()} == {MintOutcome.MINTED}
    # Marked assigned, counted, logged.
    assert _status(registry, "aaaa2222") == "assigned"
    assert minter.stats.pool_ids_in_use == 1
    assert minter.pool_ids_in_use == ["aaaa2222"]
    assert "aaaa2222" in caplog.text and "mappings already use" in caplog.text
    assert fetch_all(
        registry, "SELECT SourceId FROM identifiers WHERE CanonicalId = 'aaaa2222'"
    ) == [("b1",)]


def test_the_probe_adds_no_statement_to_a_claim(registry, connect_registry, monkeypatch):
    fill_pool(registry, 50)
    _start_claims_at(monkeypatch, "a")  # the whole pool lies after the start: one claim
    with Minter(connect_registry) as minter:
        conn = minter.connection

        def questions() -> int:
            with conn.cursor() as cursor:
                cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
                return int(cursor.fetchone()[1])

        before = questions()
        minter.mint_ids([MintRequest(work("calm-record-id", f"n{n}")) for n in range(10)])
        # lookup, claim, insert, mark assigned, commit (and the count itself)
        assert questions() - before - 1 == 5


def test_reconciliation_names_records_that_share_an_id_without_inheritance(registry, minter):
    fill_pool(registry, 5)
    b1, f1 = work("sierra-system-number", "b1"), work("folio-instance", "f1")
    minter.mint_ids([MintRequest(b1)])
    minter.mint_ids([MintRequest(f1, b1)])  # an inheritance: sharing is right
    (shared,) = set(minter.lookup_ids([b1, f1]).values())
    report = rc.reconcile(connect_registry_of(registry))
    assert report.result(rc.SHARED_WITHOUT_INHERITANCE).count == 0

    # A record given the same ID with no inheritance (what a corrupted pool did).
    run_statements(
        registry,
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        f"VALUES ('Work', 'calm-record-id', 'unrelated', '{shared}')",
    )
    found = rc.reconcile(connect_registry_of(registry)).result(rc.SHARED_WITHOUT_INHERITANCE)
    assert (found.status, found.severity, found.count) == ("found", "critical", 1)
    (example,) = found.examples
    assert example.startswith(f"{shared}: ")
    for record in (
        "[sierra-system-number/b1]",
        "[folio-instance/f1]",
        "[calm-record-id/unrelated]",
    ):
        assert record in example


def connect_registry_of(settings):
    return lambda: connect(settings)


def test_claims_start_at_a_random_point_so_minting_order_is_not_revealed(registry, minter):
    fill_pool(registry, 2_000)
    minted: list[list[str]] = []
    for call in range(20):
        sources = [work("calm-record-id", f"c{call}-{n}") for n in range(10)]
        results = minter.mint_ids([MintRequest(source) for source in sources])
        minted.append(sorted(results[source].canonical_id for source in sources))
    free = [
        row[0]
        for row in fetch_all(
            registry, "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free'"
        )
    ]
    everything = [c for batch in minted for c in batch]
    # Claimed in sorted order, all 200 would sort below every free ID, and each call's IDs
    # above the previous call's.
    assert max(everything) > min(free)
    firsts = [batch[0] for batch in minted]
    assert firsts != sorted(firsts)


def test_a_claim_wraps_around_from_its_start_in_one_lock_order(
    registry, connect_registry, monkeypatch
):
    run_statements(
        registry,
        "INSERT INTO canonical_ids (CanonicalId) VALUES "
        "('bbbb2222'), ('cccc2222'), ('pppp2222'), ('qqqq2222'), ('rrrr2222')",
    )
    _start_claims_at(monkeypatch, "pqqq2222")
    sources = [work("calm-record-id", f"w{n}") for n in range(4)]
    with Minter(connect_registry) as minter:
        claimed = minter._claim_free_ids(minter.connection, 4)
        minter.connection.rollback()
        results = minter.mint_ids([MintRequest(source) for source in sources])
    # From the start to the end of the partition, then from its beginning: in that order.
    assert claimed == ["qqqq2222", "rrrr2222", "bbbb2222", "cccc2222"]
    assert {r.canonical_id for r in results.values()} == set(claimed)
