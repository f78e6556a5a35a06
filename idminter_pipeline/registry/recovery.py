"""Putting published mappings back into a registry restored to an earlier point.

A restore (Aurora point-in-time, a dump) forgets every mapping minted after its restore point,
and its pool offers their canonical IDs again, although the identified documents published them.
`works.restore` reads those documents; this module is its SQL: which of their IDs the registry
holds and for whom, and, applied, one transaction per batch that registers the missing mappings,
marks their IDs assigned and records again the inheritances among them (the provenance
succession ranks successors by). It never changes an existing mapping: a source the registry maps
to another ID, or an ID the registry gave to another record, is a conflict for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, session_max_allowed_packet
from idminter_pipeline.registry.minting.plan import _inheritance
from idminter_pipeline.registry.minting.statements import record_events_statements
from idminter_pipeline.registry.packets import statement_budget

# Canonical IDs per look-up statement: 8 ASCII bytes each, far inside any packet.
IDS_PER_STATEMENT = 1_000

_HOLDERS_SQL = (
    "SELECT CanonicalId, OntologyType, SourceSystem, SourceId FROM identifiers "
    "WHERE CanonicalId IN ({marks})"
)
_STATUS_SQL = "SELECT CanonicalId, Status FROM canonical_ids WHERE CanonicalId IN ({marks})"
# An ID the restored pool lacks entirely is added as assigned; a free one becomes assigned.
# Placeholders only in VALUES, so pymysql folds the rows into multi-row statements.
_ASSIGN_SQL = (
    "INSERT INTO canonical_ids (CanonicalId, Status, AssignedAt) VALUES (%s, %s, %s) "
    "ON DUPLICATE KEY UPDATE Status = 'assigned', AssignedAt = NOW(6)"
)
_MAP_SQL = (
    "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
    "VALUES (%s, %s, %s, %s)"
)
_RECORD_SQL = (
    "INSERT INTO registry_recoveries "
    "(DocumentsRead, MappingsRestored, IdsReassigned, Conflicts, Store) VALUES (%s, %s, %s, %s, %s)"
)
_LAST_RECOVERY_SQL = "SELECT MAX(RanAt) FROM registry_recoveries"
# The newest claim from the pool: the index on (AssignedAt, Status) answers it in one probe.
_NEWEST_ASSIGNMENT_SQL = "SELECT MAX(AssignedAt) FROM canonical_ids"


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + IDS_PER_STATEMENT] for i in range(0, len(items), IDS_PER_STATEMENT)]


def holders(conn: Connection, canonical_ids: Sequence[str]) -> dict[str, set[str]]:
    """The sources (`Type[system/value]`, as stored) the registry maps to each of
    `canonical_ids` (absent: none)."""
    found: dict[str, set[str]] = {}
    with conn.cursor() as cursor:
        for chunk in _chunks(sorted(set(canonical_ids))):
            cursor.execute(_HOLDERS_SQL.format(marks=",".join(["%s"] * len(chunk))), chunk)
            for canonical_id, ontology_type, system, value in cursor.fetchall():
                found.setdefault(canonical_id, set()).add(f"{ontology_type}[{system}/{value}]")
    return found


def statuses(conn: Connection, canonical_ids: Sequence[str]) -> dict[str, str]:
    """`free` or `assigned` for each ID the pool holds (absent: not in the pool)."""
    found: dict[str, str] = {}
    with conn.cursor() as cursor:
        for chunk in _chunks(sorted(set(canonical_ids))):
            cursor.execute(_STATUS_SQL.format(marks=",".join(["%s"] * len(chunk))), chunk)
            found.update(cursor.fetchall())
    return found


@dataclass(frozen=True)
class Restoration:
    """One published mapping to register again."""

    source: SourceIdentifier
    canonical_id: str


@dataclass(frozen=True)
class RestoredInheritance:
    """A published record that inherited its predecessor's ID: its provenance, recorded again
    (`depth`: its place in a chain restored in one batch, 1 for a predecessor already known;
    `seq`: the `Seq` it had, when its published document's rank says), so that succession ranks
    it as the successor it is."""

    successor: SourceIdentifier
    predecessor: SourceIdentifier
    canonical_id: str
    depth: int
    seq: int | None = None


RECOVERY_JOB_ID = "recover-published"
# An inheritance recorded again with the Seq it had: an explicit AUTO_INCREMENT value (later
# ones continue after the largest), bound values only.
_EVENT_WITH_SEQ_SQL = (
    "INSERT INTO identifier_provenance (Seq, EventKey, Kind, SuccessorOntologyType, "
    "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, PredecessorSourceSystem, "
    "PredecessorSourceId, CanonicalId, PredecessorCanonicalId, JobId, LastJobId) "
    "VALUES (%s, %s, 'inherited', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_SEQS_SQL = "SELECT Seq FROM identifier_provenance WHERE Seq IN ({marks})"
_EVENT_KEYS_SQL = "SELECT EventKey FROM identifier_provenance WHERE EventKey IN ({marks})"


def _taken(conn: Connection, sql: str, values: Sequence[object]) -> set[object]:
    found: set[object] = set()
    with conn.cursor() as cursor:
        for start in range(0, len(values), IDS_PER_STATEMENT):
            chunk = list(values[start : start + IDS_PER_STATEMENT])
            cursor.execute(sql.format(marks=",".join(["%s"] * len(chunk))), chunk)
            found.update(value for (value,) in cursor.fetchall())
    return found


def _restore_inheritances(conn: Connection, inheritances: Sequence[RestoredInheritance]) -> None:
    """Record each inheritance in `identifier_provenance` as minting records one: with the `Seq`
    it had where known and still free, else with a new one (an inheritance already recorded is
    only counted as seen again)."""
    events = {
        i: _inheritance(i.successor, i.predecessor, i.canonical_id, i.depth) for i in inheritances
    }
    with_seq = [i for i in inheritances if i.seq is not None]
    if with_seq:
        seqs_taken = _taken(conn, _SEQS_SQL, [i.seq for i in with_seq])
        keys_taken = _taken(conn, _EVENT_KEYS_SQL, [events[i].key for i in with_seq])
        with_seq = [
            i for i in with_seq if i.seq not in seqs_taken and events[i].key not in keys_taken
        ]
        with conn.cursor() as cursor:
            cursor.executemany(
                _EVENT_WITH_SEQ_SQL,
                [
                    (
                        i.seq,
                        events[i].key,
                        *i.successor.as_key(),
                        *i.predecessor.as_key(),
                        i.canonical_id,
                        i.canonical_id,
                        RECOVERY_JOB_ID,
                        RECOVERY_JOB_ID,
                    )
                    for i in with_seq
                ],
            )
    explicit = set(with_seq)
    rest = [events[i] for i in inheritances if i not in explicit]
    with conn.cursor() as cursor:
        for sql, values in record_events_statements(
            rest, RECOVERY_JOB_ID, budget=statement_budget(conn)
        ):
            cursor.execute(sql, values)


def restore_mappings(
    conn: Connection,
    restorations: Sequence[Restoration],
    inheritances: Sequence[RestoredInheritance] = (),
) -> None:
    """Assign each ID, register each mapping and record each inheritance, in the caller's
    transaction (bound values)."""
    if not restorations:
        return
    with conn.cursor() as cursor:
        # pymysql folds each executemany into multi-row statements up to this length.
        cursor.max_stmt_length = session_max_allowed_packet(conn) - 1024
        cursor.execute("SELECT NOW(6)")
        (now,) = cursor.fetchone()
        ids = sorted({r.canonical_id for r in restorations})
        cursor.executemany(_ASSIGN_SQL, [(canonical_id, "assigned", now) for canonical_id in ids])
        cursor.executemany(
            _MAP_SQL,
            [
                (r.source.ontology_type, r.source.source_system, r.source.source_id, r.canonical_id)
                for r in restorations
            ],
        )
    _restore_inheritances(conn, inheritances)


def record_recovery(
    conn: Connection, *, documents: int, restored: int, reassigned: int, conflicts: int, store: str
) -> None:
    with conn.cursor() as cursor:
        cursor.execute(_RECORD_SQL, (documents, restored, reassigned, conflicts, store[:255]))


def newest_assignment(conn: Connection) -> datetime | None:
    with conn.cursor() as cursor:
        cursor.execute(_NEWEST_ASSIGNMENT_SQL)
        (value,) = cursor.fetchone()
    return value


def last_recovery(conn: Connection) -> datetime | None:
    with conn.cursor() as cursor:
        cursor.execute(_LAST_RECOVERY_SQL)
        (value,) = cursor.fetchone()
    return value
