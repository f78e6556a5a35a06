"""Migrating a live legacy 1:1 registry (RFC 083, "Data migration") to the many-to-one schema.

The legacy table is `identifiers` (latin1, primary key `CanonicalId`, unique source key). Migration
0001 leaves it in place and creates an empty `canonical_ids`; this module builds the new table as
`identifiers_new` with exactly 0001's DDL, fills both new tables, and swaps the names atomically.

How it stays correct while the legacy minter keeps writing:

1. Triggers on the legacy table log the `CanonicalId` of every inserted, updated (old and new) and
   deleted row into `legacy_migration_changes`, from before the first row is read.
2. The copy walks the legacy primary key in batches (keyset on `CanonicalId`); each batch commits
   together with its cursor in `legacy_migration_state`, so an interrupted run resumes after the
   last committed batch without copying anything twice.
3. Catch-up passes re-copy the logged IDs from the legacy table's current state and delete the log
   rows in the same transaction (never a high-water mark: a slow writer may commit a lower
   sequence number late).
4. A full, chunked, set-based comparison of every legacy row against the new tables runs without
   a lock; a difference is tolerated only when that ID has a pending log entry.
5. Under `LOCK TABLES ... WRITE` (short: only the last log entries) the rest of the log is applied,
   the IDs it touched are compared row by row and the row counts must be equal. Then the lock is
   released and one `RENAME TABLE` swaps the names. A write that slips in between is still
   logged (the triggers move with the table) and applied right after the rename.

The legacy table is kept as `identifiers_legacy` until `finalize`; `rollback` restores it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import pymysql

from idminter_pipeline.errors import (
    LegacyMigrationError,
    LegacyVerificationError,
    SchemaMigrationError,
)
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.schema import migrations_dir, table_exists
from idminter_pipeline.source_identifiers import REGISTERED_ONTOLOGY_TYPES

logger = logging.getLogger(__name__)

LIVE_TABLE = "identifiers"
NEW_TABLE = "identifiers_new"
KEPT_TABLE = "identifiers_legacy"
STATE_TABLE = "legacy_migration_state"
CHANGES_TABLE = "legacy_migration_changes"
TRIGGER_NAMES = ("idminter_legacy_ai", "idminter_legacy_au", "idminter_legacy_ad")
LEGACY_COLUMNS = ("CanonicalId", "OntologyType", "SourceId", "SourceSystem")

DEFAULT_BATCH_SIZE = 20_000
MIN_BATCH_SIZE = 100
MAX_BATCH_SIZE = 200_000
# Catch-up passes stop once the log is this small; the rest is applied under the lock.
LOCKED_CATCH_UP_THRESHOLD = 2_000
MAX_CATCH_UP_ROUNDS = 50
EXAMPLES = 10
# The server waits this long for metadata locks (triggers, rename) before giving up cleanly.
LOCK_WAIT_TIMEOUT_SECONDS = 60
MIGRATION_LOCK = "idminter_legacy_migration"

# Today's public format (idminter_pipeline.canonical_ids), as a regular expression both servers run.
CANONICAL_ID_PATTERN = "^[a-hjkmnp-z][a-hjkmnp-z2-9]{7}$"
BAD_SOURCE_PART_PATTERN = "^[[:space:]]|[[:space:]]$|[[:cntrl:]]"


class Phase(StrEnum):
    NONE = "none"  # nothing started
    COPYING = "copying"
    COPIED = "copied"
    SWAPPED = "swapped"
    FINALIZED = "finalized"


class RegistryShape(StrEnum):
    LEGACY = "legacy"  # `identifiers` is the 1:1 table
    MIGRATED = "migrated"  # `identifiers` has the RFC 083 shape
    MISSING = "missing"  # no `identifiers` table at all


def clamp_batch_size(batch_size: int) -> int:
    """Batch sizes outside [MIN_BATCH_SIZE, MAX_BATCH_SIZE] are clamped, not refused."""
    return max(MIN_BATCH_SIZE, min(MAX_BATCH_SIZE, int(batch_size)))


@dataclass(frozen=True)
class Progress:
    phase: str
    rows_copied: int
    batches: int
    estimated_total: int
    cursor: str | None
    pending_changes: int = 0


ProgressCallback = Callable[[Progress], None]


@dataclass
class MigrationReport:
    status: str  # "nothing to do", "swapped", ...
    shape_before: str
    phase: str
    rows_copied: int = 0
    batches: int = 0
    changes_applied: int = 0
    legacy_rows: int = 0
    new_rows: int = 0
    verified: bool = False
    swapped: bool = False
    duration_seconds: float = 0.0
    lock_seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Finding:
    """One kind of problem a dry run looks for: how many rows have it, and a few of them."""

    count: int
    examples: list[Any]
    consequence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DryRunReport:
    shape: str
    phase: str
    legacy_rows: int
    already_copied: int
    would_copy: int
    batch_size: int
    batches: int
    ontology_types: dict[str, int]
    findings: dict[str, Finding]
    blocking: bool  # a finding that would stop the migration

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "findings"},
            "findings": {name: f.as_dict() for name, f in self.findings.items()},
        }


# --------------------------------------------------------------------------------------------
# Inspection


def _execute(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> Any:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _scalar(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> Any:
    rows = _execute(conn, sql, params)
    return rows[0][0] if rows else None


def _columns(conn: Connection, table: str) -> list[str]:
    rows = _execute(
        conn,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [name for (name,) in rows]


def is_legacy_shape(conn: Connection, table: str) -> bool:
    """The legacy 1:1 table: the four legacy columns, no CreatedAt, primary key on CanonicalId."""
    columns = _columns(conn, table)
    if sorted(columns) != sorted(LEGACY_COLUMNS):
        return False
    primary = _execute(
        conn,
        "SELECT column_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "AND table_name = %s AND index_name = 'PRIMARY' ORDER BY seq_in_index",
        (table,),
    )
    return [name for (name,) in primary] == ["CanonicalId"]


def registry_shape(conn: Connection) -> RegistryShape:
    if not table_exists(conn, LIVE_TABLE):
        return RegistryShape.MISSING
    return RegistryShape.LEGACY if is_legacy_shape(conn, LIVE_TABLE) else RegistryShape.MIGRATED


def _state_available(conn: Connection) -> bool:
    return table_exists(conn, STATE_TABLE) and table_exists(conn, CHANGES_TABLE)


def _require_state_tables(conn: Connection) -> None:
    if not _state_available(conn):
        raise SchemaMigrationError(
            f"the registry lacks the {STATE_TABLE} tables (migration 0004): run "
            "`idminter db migrate` first"
        )


@dataclass(frozen=True)
class _State:
    phase: Phase
    cursor: str | None
    rows_copied: int
    batches: int
    legacy_create_table: str
    swapped_at: Any


def _read_state(conn: Connection, *, for_update: bool = False) -> _State | None:
    if not _state_available(conn):
        return None
    rows = _execute(
        conn,
        f"SELECT Phase, CopyCursor, RowsCopied, BatchesCopied, LegacyCreateTable, SwappedAt "
        f"FROM {STATE_TABLE} WHERE Id = 1" + (" FOR UPDATE" if for_update else ""),
    )
    if not rows:
        return None
    phase, cursor, copied, batches, ddl, swapped_at = rows[0]
    return _State(Phase(phase), cursor, copied, batches, ddl, swapped_at)


def show_create_table(conn: Connection, table: str) -> str:
    return _execute(conn, f"SHOW CREATE TABLE `{table}`")[0][1]


def _pending_changes(conn: Connection) -> int:
    return int(_scalar(conn, f"SELECT COUNT(*) FROM {CHANGES_TABLE}") or 0)


def _estimated_rows(conn: Connection, table: str) -> int:
    # Statistics, not a scan: only for progress reporting.
    value = _scalar(
        conn,
        "SELECT table_rows FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %s",
        (table,),
    )
    return int(value or 0)


def new_identifiers_ddl(table: str = NEW_TABLE) -> str:
    """0001's `CREATE TABLE identifiers` statement, renamed: the swapped-in table is identical."""
    text = (migrations_dir() / "0001_create_registry.sql").read_text()
    match = re.search(
        r"CREATE TABLE IF NOT EXISTS identifiers \((?P<body>.*?)\)(?P<options> ENGINE=[^;]*);",
        text,
        re.DOTALL,
    )
    if match is None:
        raise SchemaMigrationError("cannot find CREATE TABLE identifiers in 0001_create_registry")
    return f"CREATE TABLE IF NOT EXISTS {table} ({match['body']}){match['options']}"


# --------------------------------------------------------------------------------------------
# Locking and connections


@contextmanager
def _migration_lock(connect: ConnectionFactory) -> Iterator[None]:
    """One migration, rollback or finalize at a time per registry (a server-side named lock)."""
    conn = connect()
    try:
        got = _scalar(conn, "SELECT GET_LOCK(CONCAT(DATABASE(), %s), 0)", (MIGRATION_LOCK,))
        if got != 1:
            raise LegacyMigrationError(
                "another legacy migration, rollback or finalize is running on this registry"
            )
        try:
            yield
        finally:
            _execute(conn, "SELECT RELEASE_LOCK(CONCAT(DATABASE(), %s))", (MIGRATION_LOCK,))
    finally:
        conn.close()


def _copy_connection(connect: ConnectionFactory) -> Connection:
    conn = connect()
    # READ COMMITTED: INSERT ... SELECT then reads the legacy rows without locking them, so the
    # legacy minter is never blocked by the copy. Foreign key checks are off for this session
    # only: each batch writes canonical_ids before identifiers_new in one transaction, and the
    # verification checks every ID exists before the swap.
    _execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    _execute(conn, "SET SESSION foreign_key_checks = 0")
    _execute(conn, f"SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT_SECONDS}")
    return conn


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _fits_new_id_column(value: str) -> bool:
    return len(value) <= 8 and value.isascii()


# --------------------------------------------------------------------------------------------
# Dry run


def _examples(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
    return [row[0] if len(row) == 1 else list(row) for row in _execute(conn, sql, params)]


def dry_run(connect: ConnectionFactory, *, batch_size: int = DEFAULT_BATCH_SIZE) -> DryRunReport:
    """What a migration would copy and which legacy rows look wrong. Reads only; writes nothing."""
    batch_size = clamp_batch_size(batch_size)
    conn = connect()
    try:
        _execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        shape = registry_shape(conn)
        state = _read_state(conn)
        phase = state.phase if state else Phase.NONE
        source = LIVE_TABLE if shape is RegistryShape.LEGACY else None
        if source is None:
            conn.rollback()
            return DryRunReport(
                shape.value, phase.value, 0, 0, 0, batch_size, 0, {}, {}, blocking=False
            )
        legacy_rows = int(_scalar(conn, f"SELECT COUNT(*) FROM {source}"))
        already = state.rows_copied if state and state.phase is Phase.COPYING else 0
        would_copy = max(legacy_rows - already, 0)
        ontology_types = {
            str(name): int(n)
            for name, n in _execute(
                conn, f"SELECT OntologyType, COUNT(*) FROM {source} GROUP BY OntologyType"
            )
        }
        id_utf8 = "CONVERT(CanonicalId USING utf8mb4) COLLATE utf8mb4_bin"
        unfit = (
            "(CHAR_LENGTH(CanonicalId) > 8 OR CAST(CanonicalId AS BINARY) <> "
            "CAST(CONVERT(CanonicalId USING ascii) AS BINARY))"
        )
        nonconforming = f"NOT ({id_utf8} REGEXP '{CANONICAL_ID_PATTERN}')"
        bad_parts = " OR ".join(
            f"{part} = '' OR {part} REGEXP '{BAD_SOURCE_PART_PATTERN}'"
            for part in ("OntologyType", "SourceSystem", "SourceId")
        )
        counts = _execute(
            conn,
            f"SELECT COALESCE(SUM({unfit}), 0), COALESCE(SUM({nonconforming}), 0), "
            f"COALESCE(SUM({bad_parts}), 0) FROM {source}",
        )[0]
        n_unfit, n_nonconforming, n_bad_parts = (int(v) for v in counts)
        utf8_key = ", ".join(
            f"CONVERT({part} USING utf8mb4) COLLATE utf8mb4_bin"
            for part in ("OntologyType", "SourceSystem", "SourceId")
        )
        collisions_sql = (
            f"SELECT {utf8_key}, COUNT(*) FROM {source} GROUP BY {utf8_key} HAVING COUNT(*) > 1"
        )
        n_collisions = int(_scalar(conn, f"SELECT COUNT(*) FROM ({collisions_sql}) c") or 0)
        unknown_types = sorted(set(ontology_types) - set(REGISTERED_ONTOLOGY_TYPES))
        n_unknown = sum(ontology_types[t] for t in unknown_types)

        def rows_where(condition: str) -> list[Any]:
            return _examples(
                conn,
                f"SELECT CanonicalId, OntologyType, SourceSystem, SourceId FROM {source} "
                f"WHERE {condition} ORDER BY CanonicalId LIMIT {EXAMPLES}",
            )

        findings = {
            "ids_not_fitting_varchar8_ascii": Finding(
                n_unfit,
                rows_where(unfit) if n_unfit else [],
                "blocks the migration: the new CanonicalId column is VARCHAR(8) ascii",
            ),
            "ids_breaking_current_format": Finding(
                n_nonconforming,
                rows_where(nonconforming) if n_nonconforming else [],
                "migrates unchanged: published IDs never change",
            ),
            "source_parts_padded_empty_or_control": Finding(
                n_bad_parts,
                rows_where(bad_parts) if n_bad_parts else [],
                "migrates unchanged; new input with such values is refused, so these rows can "
                "only be matched by exactly the stored value (reconcile lists padding variants)",
            ),
            "sources_colliding_under_utf8mb4_bin": Finding(
                n_collisions,
                _examples(conn, f"{collisions_sql} LIMIT {EXAMPLES}") if n_collisions else [],
                "blocks the migration: two legacy rows would become one key",
            ),
            "unregistered_ontology_types": Finding(
                n_unknown,
                unknown_types[:EXAMPLES],
                "migrates unchanged; the minter refuses new requests with these types",
            ),
        }
        conn.rollback()
        return DryRunReport(
            shape=shape.value,
            phase=phase.value,
            legacy_rows=legacy_rows,
            already_copied=already,
            would_copy=would_copy,
            batch_size=batch_size,
            batches=-(-would_copy // batch_size),
            ontology_types=ontology_types,
            findings=findings,
            blocking=n_unfit > 0 or n_collisions > 0,
        )
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Copy


def _install_triggers(conn: Connection, table: str) -> None:
    existing = {
        name
        for (name,) in _execute(
            conn,
            "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE() AND event_object_table = %s",
            (table,),
        )
    }
    log = f"INSERT INTO {CHANGES_TABLE} (CanonicalId) VALUES"
    bodies = {
        "idminter_legacy_ai": f"AFTER INSERT ON {table} FOR EACH ROW {log} (NEW.CanonicalId)",
        "idminter_legacy_au": (
            f"AFTER UPDATE ON {table} FOR EACH ROW {log} (OLD.CanonicalId), (NEW.CanonicalId)"
        ),
        "idminter_legacy_ad": f"AFTER DELETE ON {table} FOR EACH ROW {log} (OLD.CanonicalId)",
    }
    for name in TRIGGER_NAMES:
        if name not in existing:
            # CREATE TRIGGER waits for the legacy table's open transactions: every write that
            # commits after this point is logged, and every earlier one is visible to the copy.
            _execute(conn, f"CREATE TRIGGER {name} {bodies[name]}")


def _drop_triggers(conn: Connection) -> None:
    for name in TRIGGER_NAMES:
        _execute(conn, f"DROP TRIGGER IF EXISTS {name}")


def _refuse_unfit_ids(conn: Connection, table: str, where: str, params: Sequence[Any]) -> None:
    rows = _execute(
        conn,
        f"SELECT CanonicalId FROM {table} WHERE ({where}) AND (CHAR_LENGTH(CanonicalId) > 8 OR "
        "CAST(CanonicalId AS BINARY) <> CAST(CONVERT(CanonicalId USING ascii) AS BINARY)) "
        f"LIMIT {EXAMPLES}",
        params,
    )
    if rows:
        raise LegacyMigrationError(
            "legacy canonical IDs do not fit the new VARCHAR(8) ascii column; fix or remove "
            "them in the legacy table, then run migrate-legacy again (progress is kept)",
            offending=[value for (value,) in rows],
        )


def _copy_rows(
    conn: Connection, source: str, target: str, where: str, params: Sequence[Any]
) -> None:
    """Copy the legacy rows matching `where` into canonical_ids and `target` (upserts)."""
    try:
        _execute(
            conn,
            f"INSERT INTO canonical_ids (CanonicalId, Status) SELECT CanonicalId, 'assigned' "
            f"FROM {source} WHERE {where} ON DUPLICATE KEY UPDATE Status = 'assigned'",
            params,
        )
        # An upsert, not a plain insert: a legacy update may have moved a source key from an
        # already copied ID to this one; the older ID is in the change log and is re-copied.
        _execute(
            conn,
            f"INSERT INTO {target} (OntologyType, SourceSystem, SourceId, CanonicalId) "
            f"SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM {source} "
            f"WHERE {where} ON DUPLICATE KEY UPDATE CanonicalId = VALUES(CanonicalId)",
            params,
        )
    except (pymysql.err.DataError, pymysql.err.InternalError, pymysql.err.OperationalError):
        conn.rollback()
        _refuse_unfit_ids(conn, source, where, params)
        raise


def _copy(
    conn: Connection,
    state: _State,
    batch_size: int,
    progress: ProgressCallback | None,
    report: MigrationReport,
) -> None:
    cursor, copied, batches = state.cursor, state.rows_copied, state.batches
    estimated = _estimated_rows(conn, LIVE_TABLE)
    while True:
        upper, count = _next_bound_in(conn, LIVE_TABLE, cursor, batch_size)
        conn.commit()
        if count == 0:
            break
        if cursor is None:
            where, params = "CanonicalId <= %s", (upper,)
        else:
            where, params = "CanonicalId > %s AND CanonicalId <= %s", (cursor, upper)
        _copy_rows(conn, LIVE_TABLE, NEW_TABLE, where, params)
        _execute(
            conn,
            f"UPDATE {STATE_TABLE} SET CopyCursor = %s, RowsCopied = RowsCopied + %s, "
            "BatchesCopied = BatchesCopied + 1, UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
            (upper, count),
        )
        conn.commit()
        cursor, copied, batches = upper, copied + count, batches + 1
        report.rows_copied, report.batches = copied, batches
        logger.info("copied %s legacy rows (%s batches), cursor %r", copied, batches, cursor)
        if progress is not None:
            progress(Progress(Phase.COPYING.value, copied, batches, estimated, cursor))
    _execute(
        conn,
        f"UPDATE {STATE_TABLE} SET Phase = 'copied', UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()


def apply_changes(
    conn: Connection,
    *,
    source: str,
    target: str,
    batch_size: int,
    max_entries: int | None = None,
    touched: set[str] | None = None,
) -> int:
    """Re-copy the IDs in the change log from `source`'s current state; return entries applied.

    Each batch deletes its log rows in the same transaction as the re-copy, so it is applied
    exactly once even if the process dies; entries committed later by slow writers stay for the
    next pass.
    """
    applied = 0
    while max_entries is None or applied < max_entries:
        rows = _execute(
            conn,
            f"SELECT Seq, CanonicalId FROM {CHANGES_TABLE} ORDER BY Seq LIMIT {int(batch_size)}",
        )
        if not rows:
            break
        seqs = [seq for seq, _ in rows]
        ids = sorted({canonical for _, canonical in rows})
        fitting = [value for value in ids if _fits_new_id_column(value)]
        if len(fitting) < len(ids):
            _refuse_unfit_ids(conn, source, f"CanonicalId IN ({_placeholders(ids)})", ids)
        if fitting:
            _execute(
                conn,
                f"DELETE FROM {target} WHERE CanonicalId IN ({_placeholders(fitting)})",
                fitting,
            )
        _copy_rows(conn, source, target, f"CanonicalId IN ({_placeholders(ids)})", ids)
        _execute(conn, f"DELETE FROM {CHANGES_TABLE} WHERE Seq IN ({_placeholders(seqs)})", seqs)
        conn.commit()
        applied += len(rows)
        if touched is not None:
            touched.update(ids)
    return applied


# --------------------------------------------------------------------------------------------
# Verification


def _mismatch_sql(legacy: str, new: str, where: str) -> str:
    """Legacy rows (matching `where`) with no identical mapping and assigned ID in the new tables.

    The join converts the legacy values to utf8mb4_bin so it uses the new primary key; the
    byte comparisons then refuse any difference the PAD SPACE collation would hide.
    """

    def utf8(column: str) -> str:
        return f"CONVERT(l.{column} USING utf8mb4) COLLATE utf8mb4_bin"

    return (
        f"SELECT l.CanonicalId FROM {legacy} l "
        f"LEFT JOIN {new} n ON n.OntologyType = {utf8('OntologyType')} "
        f"AND n.SourceSystem = {utf8('SourceSystem')} AND n.SourceId = {utf8('SourceId')} "
        "LEFT JOIN canonical_ids c "
        "ON c.CanonicalId = CONVERT(l.CanonicalId USING ascii) COLLATE ascii_bin "
        f"WHERE ({where}) AND (n.CanonicalId IS NULL OR c.CanonicalId IS NULL "
        "OR c.Status <> 'assigned' "
        "OR CAST(n.CanonicalId AS BINARY) <> CAST(l.CanonicalId AS BINARY) "
        + "".join(
            f"OR CAST(n.{part} AS BINARY) <> CAST({utf8(part)} AS BINARY) "
            for part in ("OntologyType", "SourceSystem", "SourceId")
        )
        + ")"
    )


def _ids_with_pending_changes(conn: Connection, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = _execute(
        conn,
        f"SELECT DISTINCT CanonicalId FROM {CHANGES_TABLE} "
        f"WHERE CanonicalId IN ({_placeholders(ids)})",
        list(ids),
    )
    return {value for (value,) in rows}


def verify_copy(
    conn: Connection,
    *,
    legacy: str = LIVE_TABLE,
    new: str = NEW_TABLE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tolerate_pending: bool = True,
    progress: ProgressCallback | None = None,
) -> int:
    """Compare every legacy row with the new tables, in keyset chunks; return rows compared.

    Raises LegacyVerificationError naming the differing legacy IDs. With `tolerate_pending`, a
    difference whose ID has an unapplied change-log entry is accepted (it is re-copied and
    compared again under the lock).
    """
    chunk = clamp_batch_size(batch_size * 5)
    cursor: str | None = None
    compared = 0
    bad: list[str] = []
    while True:
        upper, count = _next_bound_in(conn, legacy, cursor, chunk)
        if count == 0:
            break
        if cursor is None:
            where, params = "l.CanonicalId <= %s", [upper]
        else:
            where, params = "l.CanonicalId > %s AND l.CanonicalId <= %s", [cursor, upper]
        if _chunk_digests_match(conn, legacy, new, params):
            differing = []
        else:
            rows = _execute(conn, _mismatch_sql(legacy, new, where) + " LIMIT 1000", params)
            differing = [value for (value,) in rows]
        if differing and tolerate_pending:
            pending = _ids_with_pending_changes(conn, differing)
            differing = [value for value in differing if value not in pending]
        conn.commit()
        bad.extend(differing)
        if len(bad) >= 1000:
            break
        cursor, compared = upper, compared + count
        if progress is not None:
            progress(Progress("verifying", compared, 0, 0, cursor))
    if bad:
        raise LegacyVerificationError(
            f"{len(bad)}{'+' if len(bad) >= 1000 else ''} legacy mappings are missing or "
            f"different in {new}/canonical_ids; the tables were NOT swapped",
            offending=bad,
        )
    return compared


def _digest(*columns: str) -> str:
    """Order-independent digest terms: a row count and a sum of 60-bit slices of MD5s."""
    row = f"CONCAT_WS(CHAR(31 USING utf8mb4), {', '.join(columns)})"
    return (
        f"COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)), 0)"
    )


def _chunk_digests_match(conn: Connection, legacy: str, new: str, params: Sequence[str]) -> bool:
    """Counts and checksums of one chunk on both sides, by sequential range scans only.

    The new side reads the chunk's ID range through idx_canonical, which covers every column.
    A chunk whose digests differ (a real difference, a pending change, an ID whose legacy
    collation order differs from ascii_bin, or an assigned ID whose legacy row was deleted)
    falls back to the row-by-row comparison, which decides.
    """
    condition = (
        "CanonicalId <= %s" if len(params) == 1 else "CanonicalId > %s AND CanonicalId <= %s"
    )
    utf8 = [f"CONVERT({c} USING utf8mb4)" for c in ("CanonicalId", *_SOURCE_PARTS)]
    legacy_digest = _execute(
        conn,
        f"SELECT {_digest(*utf8)}, {_digest(utf8[0]).split(', ', 1)[1]} "
        f"FROM {legacy} WHERE {condition}",
        params,
    )[0]
    new_digest = _execute(
        conn,
        f"SELECT {_digest('CanonicalId', *_SOURCE_PARTS)} FROM {new} WHERE {condition}",
        params,
    )[0]
    id_digest = _execute(
        conn,
        f"SELECT {_digest('CanonicalId')} FROM canonical_ids "
        f"WHERE {condition} AND Status = 'assigned'",
        params,
    )[0]
    legacy_rows, legacy_sum, legacy_id_sum = legacy_digest
    return (legacy_rows, legacy_sum) == tuple(new_digest) and (legacy_rows, legacy_id_sum) == (
        tuple(id_digest)
    )


_SOURCE_PARTS = ("OntologyType", "SourceSystem", "SourceId")


def _next_bound_in(
    conn: Connection, table: str, cursor: str | None, size: int
) -> tuple[str | None, int]:
    """The key `size` entries after `cursor` and how many keys that is (fewer at the end).

    LIMIT 1 OFFSET reads the index range without materializing it (a derived table of 200,000
    keys would spill to an on-disk temporary table).
    """
    after = "WHERE CanonicalId > %s " if cursor is not None else ""
    params = (cursor,) if cursor is not None else None
    rows = _execute(
        conn,
        f"SELECT CanonicalId FROM {table} {after}ORDER BY CanonicalId "
        f"LIMIT 1 OFFSET {int(size) - 1}",
        params,
    )
    if rows:
        return rows[0][0], int(size)
    upper, count = _execute(
        conn, f"SELECT MAX(CanonicalId), COUNT(*) FROM {table} {after}", params
    )[0]
    return upper, int(count)


def _verify_ids(conn: Connection, legacy: str, new: str, ids: Sequence[str]) -> None:
    """Row-by-row comparison of the given legacy IDs (used under the lock)."""
    ids = list(ids)
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        rows = _execute(
            conn,
            _mismatch_sql(legacy, new, f"l.CanonicalId IN ({_placeholders(part)})"),
            part,
        )
        if rows:
            raise LegacyVerificationError(
                f"legacy mappings changed during the final pass do not match {new}; "
                "the tables were NOT swapped",
                offending=[value for (value,) in rows],
            )


def _compare_counts(conn: Connection, legacy: str, new: str) -> tuple[int, int]:
    legacy_rows = int(_scalar(conn, f"SELECT COUNT(*) FROM {legacy}"))
    new_rows = int(_scalar(conn, f"SELECT COUNT(*) FROM {new}"))
    if legacy_rows != new_rows:
        raise LegacyVerificationError(
            f"{legacy} holds {legacy_rows} rows but {new} holds {new_rows}; "
            "the tables were NOT swapped"
        )
    return legacy_rows, new_rows


# --------------------------------------------------------------------------------------------
# Migrate


def _start(conn: Connection) -> _State:
    """Create the new table and the triggers, and the state row (each step is idempotent)."""
    _refuse_unfit_ids(conn, LIVE_TABLE, "1 = 1", ())
    legacy_ddl = show_create_table(conn, LIVE_TABLE)
    if table_exists(conn, NEW_TABLE) and _scalar(conn, f"SELECT COUNT(*) FROM {NEW_TABLE}"):
        raise LegacyMigrationError(
            f"{NEW_TABLE} already holds rows but no migration is recorded; run "
            "`idminter db rollback-legacy` to clear it, then migrate again"
        )
    _execute(conn, new_identifiers_ddl(NEW_TABLE))
    _install_triggers(conn, LIVE_TABLE)
    _execute(
        conn,
        f"INSERT INTO {STATE_TABLE} (Id, Phase, LegacyCreateTable) VALUES (1, 'copying', %s)",
        (legacy_ddl,),
    )
    conn.commit()
    state = _read_state(conn)
    assert state is not None
    return state


def migrate(
    connect: ConnectionFactory,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    swap: bool = True,
) -> MigrationReport:
    """Copy, catch up, verify and swap a legacy registry; resume an interrupted run.

    Does nothing (status "nothing to do") when `identifiers` is not a legacy table.
    """
    started = time.monotonic()
    batch_size = clamp_batch_size(batch_size)
    with _migration_lock(connect):
        conn = _copy_connection(connect)
        try:
            report = _migrate(conn, batch_size, progress, swap)
        finally:
            conn.close()
    report.duration_seconds = round(time.monotonic() - started, 3)
    logger.info("legacy migration: %s", report.status)
    return report


def _migrate(
    conn: Connection, batch_size: int, progress: ProgressCallback | None, swap: bool
) -> MigrationReport:
    shape = registry_shape(conn)
    state = _read_state(conn) if _state_available(conn) else None
    phase = state.phase if state else Phase.NONE
    report = MigrationReport("", shape.value, phase.value)
    if shape is RegistryShape.MIGRATED and phase is Phase.COPIED and table_exists(conn, KEPT_TABLE):
        # Interrupted between the rename and recording it: finish the bookkeeping.
        _finish_swap(conn, batch_size, report)
        report.messages.append("completed a swap interrupted after the rename")
        return report
    if shape is not RegistryShape.LEGACY:
        conn.rollback()
        return _nothing_to_do(report, shape, phase)
    _require_state_tables(conn)
    if state is None:
        state = _start(conn)
        report.messages.append("started: triggers installed, identifiers_new created")
    elif phase not in (Phase.COPYING, Phase.COPIED):
        raise LegacyMigrationError(f"unexpected migration phase {phase.value} on a legacy table")
    else:
        report.messages.append(f"resuming after {state.rows_copied} rows ({phase.value})")
    report.rows_copied, report.batches = state.rows_copied, state.batches
    if state.phase is Phase.COPYING:
        _copy(conn, state, batch_size, progress, report)
    report.phase = Phase.COPIED.value

    # Catch up without a lock until only a little is left.
    for _ in range(MAX_CATCH_UP_ROUNDS):
        report.changes_applied += apply_changes(
            conn, source=LIVE_TABLE, target=NEW_TABLE, batch_size=batch_size
        )
        pending = _pending_changes(conn)
        conn.commit()
        if progress is not None:
            progress(Progress("catching up", report.rows_copied, report.batches, 0, None, pending))
        if pending <= LOCKED_CATCH_UP_THRESHOLD:
            break
    verify_copy(conn, batch_size=batch_size, progress=progress)
    report.messages.append("full comparison passed (pending changes re-checked under lock)")
    if not swap:
        report.status = "copied and verified; not swapped"
        return report
    _final_pass_and_swap(conn, batch_size, report)
    return report


def _nothing_to_do(report: MigrationReport, shape: RegistryShape, phase: Phase) -> MigrationReport:
    report.status = "nothing to do"
    if shape is RegistryShape.MISSING:
        report.messages.append("no identifiers table: apply the schema first")
    elif phase is Phase.SWAPPED:
        report.messages.append(f"already migrated; {KEPT_TABLE} is kept until finalize")
    else:
        report.messages.append("no legacy table: identifiers already has the RFC 083 shape")
    return report


def _final_pass_and_swap(conn: Connection, batch_size: int, report: MigrationReport) -> None:
    locked_at = time.monotonic()
    touched: set[str] = set()
    _execute(
        conn,
        f"LOCK TABLES {LIVE_TABLE} WRITE, {LIVE_TABLE} AS l READ, {NEW_TABLE} WRITE, "
        f"{NEW_TABLE} AS n READ, canonical_ids WRITE, canonical_ids AS c READ, "
        f"{CHANGES_TABLE} WRITE, {STATE_TABLE} WRITE",
    )
    try:
        report.changes_applied += apply_changes(
            conn, source=LIVE_TABLE, target=NEW_TABLE, batch_size=batch_size, touched=touched
        )
        _verify_ids(conn, LIVE_TABLE, NEW_TABLE, sorted(touched))
        report.legacy_rows, report.new_rows = _compare_counts(conn, LIVE_TABLE, NEW_TABLE)
        conn.commit()
    finally:
        _execute(conn, "UNLOCK TABLES")
    report.verified = True
    # MariaDB refuses RENAME TABLE under LOCK TABLES; a write landing in this gap is logged by
    # the triggers, which move with the table, and applied just below.
    _execute(
        conn,
        f"RENAME TABLE {LIVE_TABLE} TO {KEPT_TABLE}, {NEW_TABLE} TO {LIVE_TABLE}",
    )
    report.lock_seconds = round(time.monotonic() - locked_at, 3)
    _finish_swap(conn, batch_size, report)


def _finish_swap(conn: Connection, batch_size: int, report: MigrationReport) -> None:
    touched: set[str] = set()
    late = apply_changes(
        conn, source=KEPT_TABLE, target=LIVE_TABLE, batch_size=batch_size, touched=touched
    )
    if late:
        report.changes_applied += late
        _verify_ids(conn, KEPT_TABLE, LIVE_TABLE, sorted(touched))
        report.messages.append(f"{late} legacy writes between unlock and rename applied")
    _drop_triggers(conn)
    _execute(
        conn,
        f"UPDATE {STATE_TABLE} SET Phase = 'swapped', SwappedAt = CURRENT_TIMESTAMP(6), "
        "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()
    report.swapped = True
    report.phase = Phase.SWAPPED.value
    report.status = "swapped"


# --------------------------------------------------------------------------------------------
# Finalize and rollback


@dataclass
class LegacyActionReport:
    status: str
    messages: list[str] = field(default_factory=list)
    rows_copied_back: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def finalize(connect: ConnectionFactory) -> LegacyActionReport:
    """Drop the kept legacy table after a swap. There is no rollback after this."""
    with _migration_lock(connect):
        conn = connect()
        try:
            _require_state_tables(conn)
            state = _read_state(conn)
            if state is None or state.phase is not Phase.SWAPPED:
                phase = state.phase.value if state else Phase.NONE.value
                if phase == Phase.FINALIZED.value:
                    return LegacyActionReport("nothing to do", ["already finalized"])
                raise LegacyMigrationError(
                    f"nothing to finalize: the legacy migration is in phase {phase!r} "
                    "(finalize follows a successful swap)"
                )
            if registry_shape(conn) is not RegistryShape.MIGRATED:
                raise LegacyMigrationError("identifiers is not the migrated table; not finalizing")
            _drop_triggers(conn)
            _execute(conn, f"DROP TABLE IF EXISTS {KEPT_TABLE}")
            _execute(conn, f"DELETE FROM {CHANGES_TABLE}")
            _execute(
                conn,
                f"UPDATE {STATE_TABLE} SET Phase = 'finalized', "
                "FinalizedAt = CURRENT_TIMESTAMP(6), UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
            )
            conn.commit()
            return LegacyActionReport("finalized", [f"dropped {KEPT_TABLE}"])
        finally:
            conn.close()


def _release_assigned_ids(conn: Connection, batch_size: int) -> int:
    """Delete assigned canonical IDs in batches (they came from the legacy copy)."""
    deleted = 0
    while True:
        with conn.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM canonical_ids WHERE Status = 'assigned' LIMIT {int(batch_size)}"
            )
            count = cursor.rowcount
        conn.commit()
        deleted += count
        if count == 0:
            return deleted


def rollback(
    connect: ConnectionFactory, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> LegacyActionReport:
    """Undo a legacy migration that is not finalized: the legacy table is back as it was.

    After a swap, mappings the new minter wrote are copied back when the 1:1 table can hold them
    (a new source key, a canonical ID no legacy row uses, latin1 characters); if any cannot be,
    nothing changes and the error names them.
    """
    batch_size = clamp_batch_size(batch_size)
    with _migration_lock(connect):
        conn = connect()
        try:
            _execute(conn, f"SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT_SECONDS}")
            _require_state_tables(conn)
            state = _read_state(conn)
            shape = registry_shape(conn)
            if state is None or state.phase is Phase.FINALIZED:
                if (
                    state is None
                    and shape is RegistryShape.LEGACY
                    and table_exists(conn, NEW_TABLE)
                ):
                    state = _State(Phase.COPYING, None, 0, 0, "", None)
                else:
                    reason = "finalized; the legacy table is gone" if state else "not started"
                    raise LegacyMigrationError(f"nothing to roll back: the migration is {reason}")
            report = LegacyActionReport("rolled back")
            if state.phase is Phase.SWAPPED:
                report.rows_copied_back = _swap_back(conn, state)
                report.messages.append(
                    f"restored the legacy table; copied back {report.rows_copied_back} "
                    "mappings written since the swap"
                )
            else:
                _drop_triggers(conn)
                report.messages.append("stopped the copy before the swap")
            _execute(conn, f"DROP TABLE IF EXISTS {NEW_TABLE}")
            released = _release_assigned_ids(conn, batch_size)
            _execute(conn, f"DELETE FROM {CHANGES_TABLE}")
            _execute(conn, f"DELETE FROM {STATE_TABLE}")
            conn.commit()
            report.messages.append(
                f"dropped {NEW_TABLE} and removed {released} copied canonical IDs"
            )
            return report
        finally:
            conn.close()


def _swap_back(conn: Connection, state: _State) -> int:
    if not table_exists(conn, KEPT_TABLE) or not is_legacy_shape(conn, KEPT_TABLE):
        raise LegacyMigrationError(f"{KEPT_TABLE} is missing; cannot restore the legacy table")
    _execute(
        conn,
        f"LOCK TABLES {LIVE_TABLE} WRITE, {LIVE_TABLE} AS n READ, {KEPT_TABLE} WRITE",
    )
    try:
        new_rows = _execute(
            conn,
            f"SELECT CanonicalId, OntologyType, SourceSystem, SourceId FROM {LIVE_TABLE} n "
            f"WHERE n.CreatedAt > %s ORDER BY n.CreatedAt LIMIT {EXAMPLES}",
            (state.swapped_at,),
        )
        copied = 0
        if new_rows:
            try:
                with conn.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {KEPT_TABLE} (CanonicalId, OntologyType, SourceId, "
                        "SourceSystem) SELECT CanonicalId, OntologyType, SourceId, SourceSystem "
                        f"FROM {LIVE_TABLE} n WHERE n.CreatedAt > %s",
                        (state.swapped_at,),
                    )
                    copied = cursor.rowcount
            except pymysql.err.MySQLError as error:
                conn.rollback()
                raise LegacyMigrationError(
                    "mappings written since the swap cannot all be held by the 1:1 legacy "
                    f"table ({error.args[-1]}); nothing was rolled back. First of them",
                    offending=[list(row) for row in new_rows],
                ) from error
        conn.commit()
    finally:
        _execute(conn, "UNLOCK TABLES")
    _execute(conn, f"RENAME TABLE {LIVE_TABLE} TO {NEW_TABLE}, {KEPT_TABLE} TO {LIVE_TABLE}")
    return copied


def migration_status(connect: ConnectionFactory) -> dict[str, Any]:
    """Where a legacy migration stands (cheap: no scans)."""
    conn = connect()
    try:
        state = _read_state(conn)
        result = {
            "shape": registry_shape(conn).value,
            "phase": state.phase.value if state else Phase.NONE.value,
            "rows_copied": state.rows_copied if state else 0,
            "legacy_table_kept": table_exists(conn, KEPT_TABLE),
            "pending_changes": _pending_changes(conn) if _state_available(conn) else 0,
        }
        conn.rollback()
        return result
    finally:
        conn.close()
