"""The minter's SQL statements, built from a plan: the text of what `Minter` runs, and nothing else.

Each builder returns a statement (and its parameters, where it binds any); `Minter` runs them in
its transaction and retries. A builder given a `budget` (the connection's `max_allowed_packet`,
`registry.packets`) returns one statement for any normal batch and several, in row order, only
when one would not fit. Large IN-lists and VALUES lists are spelled out with pymysql's own
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

from idminter_pipeline.core.errors import StatementTooLargeError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.minting.plan import Key, _Event
from idminter_pipeline.registry.packets import (
    PACKET_MARGIN_BYTES,
    fits,
    pack,
    split_to_fit,
    text_bytes,
)

T = TypeVar("T")

# A claim takes free IDs of one range of the registry's partition in index order (idx_free is
# (Status, CanonicalId)): from a random start to the partition's end, then, if that was short,
# from its beginning up to the start (`CLAIM_FREE_IDS_AFTER_SQL` continues a range after the last
# ID seen). Within one claim rows are locked in that one deterministic order; SKIP LOCKED makes
# concurrent minters take different IDs without waiting for each other. FORCE INDEX: with the
# range on the second key part MariaDB otherwise plans a `ref` on Status alone and reads every
# free ID below the start.
#
# The pool is not trusted blindly: the second column probes idx_canonical for a mapping that
# already uses the ID (a corrupted pool, a bad restore, a hand edit), one indexed look-up per
# claimed row inside the same statement. A subquery in the select list takes no locks.
_CLAIM_FREE_IDS = (
    "SELECT c.CanonicalId, EXISTS (SELECT 1 FROM identifiers i "
    "WHERE i.CanonicalId = c.CanonicalId) "
    "FROM canonical_ids c FORCE INDEX (idx_free) WHERE c.Status = 'free' "
    "AND c.CanonicalId {start} %s AND c.CanonicalId < %s "
    "ORDER BY c.Status, c.CanonicalId LIMIT %s FOR UPDATE SKIP LOCKED"
)
CLAIM_FREE_IDS_SQL = _CLAIM_FREE_IDS.format(start=">=")
CLAIM_FREE_IDS_AFTER_SQL = _CLAIM_FREE_IDS.format(start=">")

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


def _branches(
    conn: Connection,
    keys: Iterable[SourceIdentifier],
    *,
    chunk_size: int,
    lock: bool,
    table: str = "identifiers",
) -> Iterator[tuple[tuple[str, str], Callable[[Sequence[str]], str], list[str]]]:
    """Each lookup branch: its (OntologyType, SourceSystem) group, what renders the branch's
    text after `AS g, ` for some of its SourceIds, and those SourceIds (sorted)."""
    if table not in LOOKUP_TABLES:
        raise ValueError(f"keyed_select cannot read {table!r}")
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key in keys:
        groups[(key.ontology_type, key.source_system)].add(key.source_id)
    escape = _string_escaper(conn)
    suffix = " LOCK IN SHARE MODE" if lock else ""
    for group in sorted(groups):
        where = (
            f"SourceId, CanonicalId FROM {table} WHERE "
            f"OntologyType = '{escape(group[0])}' AND SourceSystem = '{escape(group[1])}' "
            "AND SourceId IN ('"
        )

        def render(values: Sequence[str], where: str = where) -> str:
            return where + "','".join([escape(value) for value in values]) + f"'){suffix})"

        for chunk in _chunks(sorted(groups[group]), chunk_size):
            yield group, render, list(chunk)


def _union(branches: Sequence[tuple[tuple[str, str], str]]) -> tuple[str, list[tuple[str, str]]]:
    sql = " UNION ALL ".join(
        [f"(SELECT {number} AS g, {text}" for number, (_, text) in enumerate(branches)]
    )
    return sql, [group for group, _ in branches]


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
    branches = _branches(conn, keys, chunk_size=chunk_size, lock=lock, table=table)
    return _union([(group, render(chunk)) for group, render, chunk in branches])


# What `_union` adds around a branch's text: "(SELECT 99999 AS g, " and " UNION ALL ".
_BRANCH_OVERHEAD_BYTES = 32


def _fitting(
    render: Callable[[Sequence[str]], str], values: list[str], budget: int
) -> Iterator[str]:
    """The branch for `values`, or, if it does not fit in `budget`, branches for its halves."""
    text = render(values)
    size = text_bytes(text) + _BRANCH_OVERHEAD_BYTES
    if size <= budget:
        yield text
    elif len(values) == 1:
        raise StatementTooLargeError(size, budget + PACKET_MARGIN_BYTES)
    else:
        middle = len(values) // 2
        yield from _fitting(render, values[:middle], budget)
        yield from _fitting(render, values[middle:], budget)


def keyed_selects(
    conn: Connection,
    keys: Sequence[SourceIdentifier],
    *,
    chunk_size: int,
    lock: bool,
    budget: int,
    table: str = "identifiers",
) -> list[tuple[str, list[tuple[str, str]]]]:
    """`keyed_select` as one statement when it fits in `budget` bytes (any normal batch), else
    as several that each fit: branches packed in order, a branch too large on its own halved."""
    sql, groups = keyed_select(conn, keys, chunk_size=chunk_size, lock=lock, table=table)
    if not groups:
        return []
    if fits(sql, budget):
        return [(sql, groups)]
    statements: list[tuple[str, list[tuple[str, str]]]] = []
    packed: list[tuple[tuple[str, str], str]] = []
    size = 0
    branches = _branches(conn, keys, chunk_size=chunk_size, lock=lock, table=table)
    for group, render, chunk in branches:
        for text in _fitting(render, chunk, budget):
            branch_size = text_bytes(text) + _BRANCH_OVERHEAD_BYTES
            if packed and size + branch_size > budget:
                statements.append(_union(packed))
                packed, size = [], 0
            packed.append((group, text))
            size += branch_size
    if packed:
        statements.append(_union(packed))
    return statements


def insert_mappings_statements(
    conn: Connection,
    keys: Sequence[Key],
    ids: Sequence[str | None],
    ordered: Sequence[int],
    *,
    budget: int,
) -> list[str]:
    """Idempotent multi-row inserts of the mappings at positions `ordered` (sorted by key): one
    statement when it fits in `budget` bytes, else several, in key order."""
    escape = _string_escaper(conn)
    # A batch has a handful of (OntologyType, SourceSystem) pairs: escape each once.
    groups: dict[tuple[str, str], str] = {}
    for i in ordered:
        pair = keys[i][:2]
        if pair not in groups:
            groups[pair] = f"('{escape(pair[0])}','{escape(pair[1])}','"
    rows = [
        f"{groups[keys[i][:2]]}{escape(keys[i][2])}','{escape(ids[i] or '')}')" for i in ordered
    ]
    return pack(
        rows,
        head="INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) VALUES ",
        tail=" ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId",
        budget=budget,
    )


def mark_assigned_statements(
    conn: Connection, canonical_ids: Sequence[str], *, budget: int
) -> list[str]:
    """Mark the claimed IDs a call really used as assigned (`canonical_ids` given sorted)."""
    escape = _string_escaper(conn)
    return pack(
        [f"'{escape(canonical_id)}'" for canonical_id in canonical_ids],
        head="UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId IN (",
        tail=")",
        budget=budget,
    )


_RECORD_EVENTS_HEAD = (
    "INSERT INTO identifier_provenance (EventKey, Kind, SuccessorOntologyType, "
    "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, "
    "PredecessorSourceSystem, PredecessorSourceId, CanonicalId, "
    "PredecessorCanonicalId, JobId, LastJobId) VALUES "
)
_RECORD_EVENTS_TAIL = (
    " ON DUPLICATE KEY UPDATE SeenCount = SeenCount + 1, "
    "LastSeenAt = CURRENT_TIMESTAMP(6), LastJobId = VALUES(LastJobId), "
    "PredecessorCanonicalId = VALUES(PredecessorCanonicalId)"
)


def _event_row(event: _Event, job_id: str | None) -> tuple[Any, ...]:
    return (
        event.key,
        event.kind,
        *event.successor.as_key(),
        *event.predecessor.as_key(),
        event.canonical_id,
        event.predecessor_canonical_id,
        job_id,
        job_id,
    )


def _bound_bytes(row: tuple[Any, ...]) -> int:
    """At most what `row` takes once pymysql has bound it: every character escaped to two
    (a binary key as `_binary'...'`), quotes and commas."""
    total = 0
    for value in row:
        if isinstance(value, str):
            total += 2 * text_bytes(value) + 3
        elif isinstance(value, bytes):
            total += 2 * len(value) + 11
        else:
            total += 5  # NULL
    return total + 3


def record_events_statements(
    events: list[_Event], job_id: str | None, *, budget: int
) -> list[tuple[str, list[Any]]]:
    """Multi-row upserts into `identifier_provenance`, one when they fit in `budget` bytes;
    sorts `events` in place first."""
    # Chain order (an inheritance before the one that builds on it) gives Seq its meaning;
    # the event key breaks ties so concurrent writers lock unique-key entries in one order.
    events.sort(key=lambda event: (event.order, event.key))
    rows = [_event_row(event, job_id) for event in events]
    statements = []
    fixed = len(_RECORD_EVENTS_HEAD) + len(_RECORD_EVENTS_TAIL)
    for run in split_to_fit(rows, _bound_bytes, fixed=fixed, budget=budget):
        values: list[Any] = [value for row in run for value in row]
        sql = (
            _RECORD_EVENTS_HEAD
            + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(run))
            + _RECORD_EVENTS_TAIL
        )
        statements.append((sql, values))
    return statements
