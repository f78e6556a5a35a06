"""Helpers for the minting tests: a filled pool, server-side statement counts, invariants."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

from db_helpers import fetch_all

from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, connect

T = TypeVar("T")


def fill_pool(settings: DatabaseSettings, count: int) -> list[str]:
    """Insert `count` free IDs directly (independent of the pool module's top-up)."""
    ids = generate_canonical_ids_bulk(count)
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                cursor.execute(
                    "INSERT INTO canonical_ids (CanonicalId, Status) VALUES "
                    + ",".join(["(%s, 'free')"] * len(chunk)),
                    chunk,
                )
        conn.commit()
    finally:
        conn.close()
    return ids


def register(settings: DatabaseSettings, mappings: dict[tuple[str, str, str], str]) -> None:
    """Insert mappings (and their IDs, assigned) directly, as a legacy load or another minter."""
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            for key, canonical_id in mappings.items():
                cursor.execute(
                    "INSERT IGNORE INTO canonical_ids (CanonicalId, Status) "
                    "VALUES (%s, 'assigned')",
                    (canonical_id,),
                )
                cursor.execute(
                    "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                    "VALUES (%s, %s, %s, %s)",
                    (*key, canonical_id),
                )
        conn.commit()
    finally:
        conn.close()


def pool_counts(settings: DatabaseSettings) -> dict[str, int]:
    rows = fetch_all(settings, "SELECT Status, COUNT(*) FROM canonical_ids GROUP BY Status")
    counts = {"free": 0, "assigned": 0}
    counts.update({status: count for status, count in rows})
    return counts


def registry_state(settings: DatabaseSettings) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Everything the minter writes, for before/after comparisons of failed calls."""
    return (
        fetch_all(settings, "SELECT * FROM identifiers ORDER BY 1, 2, 3"),
        fetch_all(settings, "SELECT CanonicalId, Status FROM canonical_ids ORDER BY 1"),
        fetch_all(settings, "SELECT * FROM identifier_provenance ORDER BY Seq"),
    )


def _questions(conn: Connection) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        (_, value) = cursor.fetchone()
    return int(value)


def statements_sent(conn: Connection, action: Callable[[], T]) -> tuple[int, T]:
    """How many statements the server saw from this session while `action` ran.

    Counted by the server (`Questions`), not by the client; the second SHOW counts the first
    one, hence the correction, which `test_statement_counter_calibration` checks.
    """
    before = _questions(conn)
    result = action()
    after = _questions(conn)
    return after - before - 1, result


def session_counters(conn: Connection, names: tuple[str, ...]) -> dict[str, int]:
    with conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS WHERE Variable_name IN %s", (names,))
        return {name: int(value) for name, value in cursor.fetchall()}


def work(system: str, value: str) -> SourceIdentifier:
    return SourceIdentifier("Work", system, value)


def check_invariants(settings: DatabaseSettings) -> dict[str, int]:
    """The registry invariants of RFC 083, with the provenance table as the record of sharing.

    * one ID per source: guaranteed by the primary key, re-checked under the PAD SPACE rule;
    * IDs shared only through recorded predecessors: in every group of sources sharing an ID,
      all but one (the original) have an `inherited` provenance row with that ID;
    * every referenced ID is assigned, and every assigned ID is referenced.
    """
    mappings = fetch_all(
        settings, "SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM identifiers"
    )
    keys = [(o, s, v.rstrip(" ")) for o, s, v, _ in mappings]
    assert len(keys) == len(set(keys)), "a source is mapped twice"
    inherited = {
        (o, s, v): c
        for o, s, v, c in fetch_all(
            settings,
            "SELECT SuccessorOntologyType, SuccessorSourceSystem, SuccessorSourceId, CanonicalId "
            "FROM identifier_provenance WHERE Kind = 'inherited'",
        )
    }
    groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for o, s, v, c in mappings:
        groups[c].append((o, s, v))
    for canonical_id, members in groups.items():
        originals = [m for m in members if inherited.get(m) != canonical_id]
        assert len(originals) == 1, (
            f"{canonical_id} is shared without a recorded predecessor: {originals}"
        )
    referenced = set(groups)
    assigned = {
        c
        for (c,) in fetch_all(
            settings, "SELECT CanonicalId FROM canonical_ids WHERE Status = 'assigned'"
        )
    }
    assert referenced <= assigned, (
        f"referenced but not assigned: {sorted(referenced - assigned)[:5]}"
    )
    assert assigned <= referenced, f"assigned but unreferenced: {sorted(assigned - referenced)[:5]}"
    return {"mappings": len(mappings), "canonical_ids": len(groups)}
