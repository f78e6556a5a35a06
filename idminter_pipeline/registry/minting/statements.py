"""The minter's SQL statements, built from a plan: the text of what `Minter` runs, and nothing else.

Each builder returns a statement (and its parameters, where it binds any); `Minter` runs them in
its transaction and retries. Large IN-lists and VALUES lists are spelled out with pymysql's own
string escaping for the connection's mode (`_string_escaper`) instead of bound value by value,
which at 10,000 keys costs more than the server's work. Rows are listed sorted (a builder sorts
them or is given them sorted), so concurrent minters lock rows in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from pymysql.constants import SERVER_STATUS
from pymysql.converters import escape_string

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.minting.plan import Key, _Event
from idminter_pipeline.source_identifiers import SourceIdentifier

T = TypeVar("T")

# Deterministic order (idx_free is (Status, CanonicalId)); SKIP LOCKED makes concurrent minters
# take different IDs without waiting for each other.
CLAIM_FREE_IDS_SQL = (
    "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
    "ORDER BY Status, CanonicalId LIMIT %s FOR UPDATE SKIP LOCKED"
)

# Every mapping of one canonical ID, with the provenance event through which it inherited it.
ALIASES_SQL = (
    "SELECT i.OntologyType, i.SourceSystem, i.SourceId, i.CreatedAt, p.Seq, "
    "p.PredecessorOntologyType, p.PredecessorSourceSystem, "
    "p.PredecessorSourceId, p.JobId "
    "FROM identifiers i LEFT JOIN identifier_provenance p "
    "ON p.CanonicalId = i.CanonicalId AND p.Kind = 'inherited' "
    "AND p.SuccessorOntologyType = i.OntologyType "
    "AND p.SuccessorSourceSystem = i.SourceSystem "
    "AND p.SuccessorSourceId = i.SourceId "
    "WHERE i.CanonicalId = %s"
)


def _string_escaper(conn: Connection) -> Callable[[str], str]:
    """pymysql's escaping of a `str` for this connection's current mode (what
    `Connection.escape` does for strings), for building large IN-lists without its dispatch."""
    if conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return lambda value: value.replace("'", "''")
    return escape_string


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# The tables `keyed_select` may read: the registry, and the legacy migration's synced copy (which
# `idminter shadow` reads while the migration holds before its swap).
LOOKUP_TABLES = frozenset({"identifiers", "identifiers_new"})


def keyed_select(
    conn: Connection,
    keys: Iterable[SourceIdentifier],
    *,
    chunk_size: int,
    lock: bool,
    table: str = "identifiers",
) -> tuple[str, list[tuple[str, str]]]:
    """One statement: per (OntologyType, SourceSystem) group, chunks of SourceId IN-lists.

    Each branch fixes the first two primary-key columns and lists values of the third, so
    every branch is a range scan of PRIMARY (a row-constructor IN over thousands of tuples
    can fall off the index on MySQL). A branch returns its number instead of the two fixed
    columns: less to send and to decode, and the group is known from the request. Values
    are escaped exactly as pymysql's parameter binding escapes strings (`_string_escaper`),
    without its per-value type dispatch (a measurable cost at 10,000 keys).
    """
    if table not in LOOKUP_TABLES:
        raise ValueError(f"keyed_select cannot read {table!r}")
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key in keys:
        groups[(key.ontology_type, key.source_system)].add(key.source_id)
    escape = _string_escaper(conn)
    branches: list[str] = []
    branch_groups: list[tuple[str, str]] = []
    suffix = " LOCK IN SHARE MODE" if lock else ""
    for group in sorted(groups):
        where = (
            f"SourceId, CanonicalId FROM {table} WHERE "
            f"OntologyType = '{escape(group[0])}' AND SourceSystem = '{escape(group[1])}' "
            "AND SourceId IN ('"
        )
        for chunk in _chunks(sorted(groups[group]), chunk_size):
            values = "','".join([escape(value) for value in chunk])
            branches.append(f"(SELECT {len(branch_groups)} AS g, {where}{values}'){suffix})")
            branch_groups.append(group)
    return " UNION ALL ".join(branches), branch_groups


def insert_mappings_sql(
    conn: Connection, keys: Sequence[Key], ids: Sequence[str | None], ordered: Sequence[int]
) -> str:
    """One idempotent multi-row insert of the mappings at positions `ordered` (sorted by key)."""
    escape = _string_escaper(conn)
    # A batch has a handful of (OntologyType, SourceSystem) pairs: escape each once.
    groups: dict[tuple[str, str], str] = {}
    for i in ordered:
        pair = keys[i][:2]
        if pair not in groups:
            groups[pair] = f"('{escape(pair[0])}','{escape(pair[1])}','"
    rows = ",".join(
        [f"{groups[keys[i][:2]]}{escape(keys[i][2])}','{escape(ids[i] or '')}')" for i in ordered]
    )
    return (
        "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
        f"VALUES {rows} ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId"
    )


def mark_assigned_sql(conn: Connection, canonical_ids: Sequence[str]) -> str:
    """Mark the claimed IDs a call really used as assigned (`canonical_ids` given sorted)."""
    escape = _string_escaper(conn)
    listed = "','".join([escape(canonical_id) for canonical_id in canonical_ids])
    return f"UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId IN ('{listed}')"


def record_events_statement(events: list[_Event], job_id: str | None) -> tuple[str, list[Any]]:
    """One multi-row upsert into `identifier_provenance`; sorts `events` in place first."""
    # Chain order (an inheritance before the one that builds on it) gives Seq its meaning;
    # the event key breaks ties so concurrent writers lock unique-key entries in one order.
    events.sort(key=lambda event: (event.order, event.key))
    values: list[Any] = []
    for event in events:
        values.extend(
            (
                event.key,
                event.kind,
                *event.successor.as_key(),
                *event.predecessor.as_key(),
                event.canonical_id,
                event.predecessor_canonical_id,
                job_id,
                job_id,
            )
        )
    sql = (
        "INSERT INTO identifier_provenance (EventKey, Kind, SuccessorOntologyType, "
        "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, "
        "PredecessorSourceSystem, PredecessorSourceId, CanonicalId, "
        "PredecessorCanonicalId, JobId, LastJobId) VALUES "
        + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(events))
        + " ON DUPLICATE KEY UPDATE SeenCount = SeenCount + 1, "
        "LastSeenAt = CURRENT_TIMESTAMP(6), LastJobId = VALUES(LastJobId), "
        "PredecessorCanonicalId = VALUES(PredecessorCanonicalId)"
    )
    return sql, values
