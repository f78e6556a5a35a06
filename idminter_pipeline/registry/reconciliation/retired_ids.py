"""Retired canonical IDs: IDs that once identified a record, which the pool must never offer again.

An orphan (an `assigned` ID no mapping uses) may go back to the pool only if nothing shows that
a mapping ever held it; a published ID that went to another record would make its old public URL
show another work. `once_mapped` looks for that evidence, batch by batch, in every place that can
hold it, and says which it found first:

- `retired_canonical_ids` (migration 0006): retired before, for the reason recorded then;
- `mapping_changes` (migration 0007): a mapping holding the ID was changed or deleted through
  the sanctioned path (`retire_mapping`), which the database's guards record;
- `canonical_ids.AssignedAt` (migration 0003): only an `UPDATE` stamps it, and in this registry
  an ID is updated to `assigned` only in the transaction that maps it (the minter) or because a
  mapping uses it (the reconciliation's repair of a free ID in use);
- `identifier_provenance` (migration 0002): an inheritance or a mismatch named the ID;
- the legacy table kept after the swap (`identifiers_legacy`) and the migration's change log;
- the legacy migration itself: once a registry has received a legacy copy (a row in
  `legacy_migration_state`), an assigned ID without `AssignedAt` came from a legacy row (the
  copy inserts IDs as assigned, unstamped; the minter stamps every ID it assigns).

`retire` records what was found in `retired_canonical_ids`, so the evidence outlives its source
(the legacy table is dropped at finalize, the change log is emptied, an operator may prune
provenance). What cannot be proven is in docs/design/reconciliation.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.invariants import CHANGES_TABLE as MAPPING_CHANGES_TABLE
from idminter_pipeline.registry.invariants import mapping_change_permit
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    KEPT_TABLE,
    STATE_TABLE,
)
from idminter_pipeline.registry.packets import bound_value_bytes, packet_runs
from idminter_pipeline.registry.reconciliation.keyset import execute
from idminter_pipeline.registry.schema import table_exists

RETIRED_TABLE = "retired_canonical_ids"
PROVENANCE_TABLE = "identifier_provenance"

ASSIGNED_BY_A_MAPPING = "assigned with a mapping (AssignedAt is set)"
NAMED_BY_PROVENANCE = "named by identifier_provenance"
IN_THE_LEGACY_TABLE = f"in the legacy table ({KEPT_TABLE})"
IN_THE_CHANGE_LOG = f"in the legacy migration's change log ({CHANGES_TABLE})"
COPIED_FROM_LEGACY = "copied from the legacy registry (assigned without AssignedAt)"
CHANGED_MAPPING = f"a mapping holding it was changed or retired ({MAPPING_CHANGES_TABLE})"


def _in_list(values: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(values))


def _column_exists(conn: Connection, table: str, column: str) -> bool:
    rows = execute(
        conn,
        "SELECT COUNT(*) FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s",
        (table, column),
    )
    return bool(rows[0][0])


def once_mapped(conn: Connection, candidates: Sequence[str]) -> dict[str, str]:
    """Candidate ID -> the first evidence found that a mapping once held it; IDs without any
    evidence are left out. Reads only (no locks); as many candidates per statement as fit the
    server's `max_allowed_packet` (the provenance read binds each twice)."""
    found: dict[str, str] = {}
    for run in packet_runs(conn, list(dict.fromkeys(candidates)), uses=2):
        found.update(_once_mapped(conn, run))
    return found


def _once_mapped(conn: Connection, candidates: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}

    def note(rows: Sequence[Sequence[str]], reason: str | None = None) -> None:
        for row in rows:
            found.setdefault(row[0], reason if reason is not None else row[1])

    listed = _in_list(candidates)
    if table_exists(conn, RETIRED_TABLE):
        note(
            execute(
                conn,
                f"SELECT CanonicalId, Reason FROM {RETIRED_TABLE} WHERE CanonicalId IN ({listed})",
                candidates,
            )
        )
    if table_exists(conn, MAPPING_CHANGES_TABLE):
        note(
            execute(
                conn,
                f"SELECT CanonicalId FROM {MAPPING_CHANGES_TABLE} WHERE CanonicalId IN ({listed})",
                candidates,
            ),
            CHANGED_MAPPING,
        )
    stamped = _column_exists(conn, "canonical_ids", "AssignedAt")
    if stamped:
        note(
            execute(
                conn,
                f"SELECT CanonicalId FROM canonical_ids WHERE CanonicalId IN ({listed}) "
                "AND AssignedAt IS NOT NULL",
                candidates,
            ),
            ASSIGNED_BY_A_MAPPING,
        )
    if table_exists(conn, PROVENANCE_TABLE):
        note(
            execute(
                conn,
                f"SELECT CanonicalId FROM {PROVENANCE_TABLE} WHERE CanonicalId IN ({listed}) "
                f"UNION SELECT PredecessorCanonicalId FROM {PROVENANCE_TABLE} "
                f"WHERE Kind = 'predecessor_mismatch' AND PredecessorCanonicalId IN ({listed})",
                [*candidates, *candidates],
            ),
            NAMED_BY_PROVENANCE,
        )
    for table, reason in ((KEPT_TABLE, IN_THE_LEGACY_TABLE), (CHANGES_TABLE, IN_THE_CHANGE_LOG)):
        if table_exists(conn, table):
            # The legacy table compares case-insensitively (latin1_swedish_ci): match the same
            # way, so a legacy `ABCD2345` also keeps `abcd2345` out of the pool.
            hits = {
                str(value).rstrip(" ").lower()
                for (value,) in execute(
                    conn,
                    f"SELECT CanonicalId FROM {table} WHERE CanonicalId IN ({listed})",
                    candidates,
                )
            }
            note([(c,) for c in candidates if c.lower() in hits], reason)
    if (
        table_exists(conn, STATE_TABLE)
        and execute(conn, f"SELECT COUNT(*) FROM {STATE_TABLE}")[0][0]
    ):
        unstamped = (
            execute(
                conn,
                f"SELECT CanonicalId FROM canonical_ids WHERE CanonicalId IN ({listed}) "
                "AND AssignedAt IS NULL",
                candidates,
            )
            if stamped
            else [(c,) for c in candidates]
        )
        note(unstamped, COPIED_FROM_LEGACY)
    return found


def retire(conn: Connection, reasons: Mapping[str, str]) -> list[str]:
    """Record IDs as retired (keeping an earlier record and its reason); returns those new.
    The caller commits."""
    new: list[str] = []
    # A row binds the ID and its reason: the longest reason counts for every row.
    reason_bytes = max((bound_value_bytes(reason) for reason in reasons.values()), default=0)
    for ids in packet_runs(conn, sorted(reasons), per_row=reason_bytes + 4):
        already = {
            value
            for (value,) in execute(
                conn,
                f"SELECT CanonicalId FROM {RETIRED_TABLE} WHERE CanonicalId IN ({_in_list(ids)})",
                ids,
            )
        }
        fresh = [canonical_id for canonical_id in ids if canonical_id not in already]
        if fresh:
            execute(
                conn,
                f"INSERT IGNORE INTO {RETIRED_TABLE} (CanonicalId, Reason) VALUES "
                + ", ".join(["(%s, %s)"] * len(fresh)),
                [v for canonical_id in fresh for v in (canonical_id, reasons[canonical_id])],
            )
        new.extend(fresh)
    return new


@dataclass(frozen=True)
class RetiredMapping:
    source: str
    canonical_id: str
    reason: str
    # Other mappings (aliases through inheritance) that keep the ID; 0 means it was retired.
    still_mapped_by: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retire_mapping(
    connect: ConnectionFactory, source: SourceIdentifier, reason: str
) -> RetiredMapping:
    """Delete one mapping, the sanctioned way: only the migration (admin) account holds the
    permit the database's guards ask for (`invariants.mapping_change_permit`), the guard records
    the deletion in `mapping_changes`, and the ID, unless an alias still holds it, is retired in
    the same transaction, so it never goes to another record."""
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("--reason is empty: say why the mapping is retired")
    key = source.as_key()
    conn = connect()
    try:
        with mapping_change_permit(conn, f"retire-mapping: {reason}"):
            rows = execute(
                conn,
                "SELECT CanonicalId FROM identifiers WHERE OntologyType = %s "
                "AND SourceSystem = %s AND SourceId = %s FOR UPDATE",
                key,
            )
            if not rows:
                raise InvalidInputError(f"{source}: no such mapping")
            canonical_id = rows[0][0]
            execute(
                conn,
                "DELETE FROM identifiers WHERE OntologyType = %s AND SourceSystem = %s "
                "AND SourceId = %s",
                key,
            )
            ((others,),) = execute(
                conn,
                "SELECT COUNT(*) FROM identifiers WHERE CanonicalId = %s LOCK IN SHARE MODE",
                (canonical_id,),
            )
            if not others:
                retire(conn, {canonical_id: f"mapping of {source} retired: {reason}"[:255]})
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return RetiredMapping(str(source), canonical_id, reason, int(others))
