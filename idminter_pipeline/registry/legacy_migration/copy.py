"""The legacy migration's copy: triggers, the keyset copy and the catch-up from the change log.

`start_copy` creates `identifiers_new` (0001's DDL) and installs the log triggers on the legacy
table, which record the `CanonicalId` of every later insert, update and delete in
`legacy_migration_changes`. `copy_in_batches` then walks the legacy primary key in batches,
each committed with its cursor so an interrupted run resumes where it stopped, and
`apply_changes` re-copies the logged IDs from the legacy table's current state, deleting their
log rows in the same transaction. Once the bulk copy is done, guard triggers keep every session
but the migration's from writing the copy. Legacy IDs the new ASCII column cannot hold stop the
copy with an error that names them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pymysql

from idminter_pipeline.core.errors import LegacyMigrationError
from idminter_pipeline.registry import invariants
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.invariants import trigger_names
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    EXAMPLES,
    GUARD_TRIGGER_NAMES,
    LIVE_TABLE,
    LOCK_WAIT_TIMEOUT_SECONDS,
    LOG_TRIGGER_NAMES,
    MIGRATION_SESSION_VARIABLE,
    NEW_TABLE,
    SOURCE_PARTS,
    STATE_TABLE,
    TRIGGER_NAMES,
    Key,
    MigrationReport,
    MigrationState,
    Phase,
    Progress,
    ProgressCallback,
    estimated_rows,
    execute,
    fits_new_id_column,
    new_identifiers_ddl,
    next_key_bound,
    placeholders,
    range_condition,
    read_state,
    scalar,
    show_create_table,
)
from idminter_pipeline.registry.schema import table_exists

logger = logging.getLogger(__name__)

ER_DUP_ENTRY = 1062


def copy_connection(connect: ConnectionFactory) -> Connection:
    conn = connect()
    # READ COMMITTED: INSERT ... SELECT then reads the legacy rows without locking them, so the
    # legacy minter is never blocked by the copy. Foreign key checks are off for this session
    # only: each batch writes canonical_ids before identifiers_new in one transaction, and the
    # verification checks every ID exists before the swap.
    execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    execute(conn, "SET SESSION foreign_key_checks = 0")
    execute(conn, f"SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT_SECONDS}")
    execute(conn, f"SET {MIGRATION_SESSION_VARIABLE} = CONNECTION_ID()")
    return conn


def create_trigger(conn: Connection, statement: str) -> None:
    invariants.create_trigger(
        conn, statement, error=LegacyMigrationError, rerun="then rerun: the migration resumes"
    )


def install_log_triggers(
    conn: Connection, table: str, names: Sequence[str] = LOG_TRIGGER_NAMES
) -> None:
    """Log the CanonicalId of every write to `table` in the change log (idempotent): `names`
    are the insert, update and delete triggers'."""
    existing = trigger_names(conn, table)
    log = f"INSERT INTO {CHANGES_TABLE} (CanonicalId) VALUES"
    inserted, updated, deleted = names
    bodies = {
        inserted: f"AFTER INSERT ON {table} FOR EACH ROW {log} (NEW.CanonicalId)",
        updated: (
            f"AFTER UPDATE ON {table} FOR EACH ROW {log} (OLD.CanonicalId), (NEW.CanonicalId)"
        ),
        deleted: f"AFTER DELETE ON {table} FOR EACH ROW {log} (OLD.CanonicalId)",
    }
    for name in names:
        if name not in existing:
            # CREATE TRIGGER waits for the source table's open transactions: every write that
            # commits after this point is logged, and every earlier one is visible to the copy.
            create_trigger(conn, f"CREATE TRIGGER {name} {bodies[name]}")


def _refused_mapping(event: str, row: str) -> str:
    return (
        f"'written only by migrate-legacy until swapped; refused {event} of ', "
        f"{row}.OntologyType, '[', {row}.SourceSystem, '/', {row}.SourceId, '] -> ', "
        f"{row}.CanonicalId"
    )


def install_guard_triggers(
    conn: Connection,
    table: str = NEW_TABLE,
    names: Sequence[str] = GUARD_TRIGGER_NAMES,
    refused: Callable[[str, str], str] = _refused_mapping,
) -> None:
    """Refuse writes to the copy from any session but the migration's (idempotent): `names`
    are the insert, update and delete guards'; `refused(event, row)`, the CONCAT arguments of
    the message (`event` in lower case, `row` NEW or OLD).

    The verification proves the copy equal to the legacy table before the lock; the lock then
    re-checks only the IDs the legacy change log names. Without the guard, a row written to the
    copy by someone else in between would be swapped in unchecked. Installed after the bulk copy
    so the copy's INSERT ... SELECT does not pay a trigger per row; anything written during the
    copy is found by the verification.
    """
    existing = trigger_names(conn, table)
    for name, event, row in zip(
        names, ("INSERT", "UPDATE", "DELETE"), ("NEW", "OLD", "OLD"), strict=True
    ):
        if name in existing:
            continue
        # SIGNAL takes the message from a variable only; 128 characters is MySQL's limit. The
        # guard stays on the table through the rename until the swap is recorded: a legacy
        # minter still writing then gets this error rather than a foreign key failure.
        create_trigger(
            conn,
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW BEGIN "
            "DECLARE refused VARCHAR(128) DEFAULT NULL; "
            f"IF {MIGRATION_SESSION_VARIABLE} IS NULL THEN "
            f"SET refused = LEFT(CONCAT({refused(event.lower(), row)}), 128); "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = refused; "
            "END IF; END",
        )


def drop_triggers(conn: Connection) -> None:
    for name in TRIGGER_NAMES:
        execute(conn, f"DROP TRIGGER IF EXISTS {name}")


def refuse_unfit_ids(conn: Connection, table: str, where: str, params: Sequence[Any]) -> None:
    rows = execute(
        conn,
        f"SELECT CanonicalId FROM {table} WHERE ({where}) AND (CHAR_LENGTH(CanonicalId) > 8 OR "
        "CAST(CanonicalId AS BINARY) <> CAST(CONVERT(CanonicalId USING ascii) AS BINARY)) "
        f"LIMIT {EXAMPLES}",
        params,
    )
    if rows:
        raise unfit_ids_error([value for (value,) in rows])


def unfit_ids_error(ids: Sequence[str]) -> LegacyMigrationError:
    return LegacyMigrationError(
        "legacy canonical IDs do not fit the new VARCHAR(8) ascii column; fix or remove "
        "them in the legacy table, then run migrate-legacy again (progress is kept)",
        offending=list(ids),
    )


def _copy_rows(
    conn: Connection, source: str, target: str, where: str, params: Sequence[Any]
) -> None:
    """Copy the legacy rows matching `where` into canonical_ids and `target` (upserts)."""
    try:
        execute(
            conn,
            f"INSERT INTO canonical_ids (CanonicalId, Status) SELECT CanonicalId, 'assigned' "
            f"FROM {source} WHERE {where} ON DUPLICATE KEY UPDATE Status = 'assigned'",
            params,
        )
        # An upsert, not a plain insert: a legacy update may have moved a source key from an
        # already copied ID to this one; the older ID is in the change log and is re-copied.
        execute(
            conn,
            f"INSERT INTO {target} (OntologyType, SourceSystem, SourceId, CanonicalId) "
            f"SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM {source} "
            f"WHERE {where} ON DUPLICATE KEY UPDATE CanonicalId = VALUES(CanonicalId)",
            params,
        )
    except (pymysql.err.DataError, pymysql.err.InternalError, pymysql.err.OperationalError):
        conn.rollback()
        refuse_unfit_ids(conn, source, where, params)
        raise


# Copies the rows whose key is above `lower` (None at the start) and at most `upper`:
# (conn, lower, upper).
CopyBatch = Callable[[Connection, "Key | None", Key], None]


@dataclass(frozen=True)
class Keyset:
    """A table's key walked in batches by the copy, and the state-row columns that keep the
    walk's place: `cursor_columns` the last key copied (one per key column), `counter` the rows
    copied. `binds`: how each cursor value is written to compare with its key column."""

    table: str
    key: tuple[str, ...] = ("CanonicalId",)
    cursor_columns: tuple[str, ...] = ("CopyCursor",)
    counter: str = "RowsCopied"
    binds: tuple[str, ...] | None = None


def walk_in_batches(
    conn: Connection,
    keyset: Keyset,
    cursor: Key | None,
    copy_batch: CopyBatch,
    batch_size: int,
) -> Iterator[tuple[Key, int]]:
    """Walk `keyset` from `cursor` in batches of `batch_size` keys, each copied by `copy_batch`
    and committed with its checkpoint in the state row, so an interrupted copy resumes after the
    last committed batch; yields each batch's upper key and row count once committed."""
    assignments = ", ".join(f"{column} = %s" for column in keyset.cursor_columns)
    while True:
        upper, count = next_key_bound(
            conn, keyset.table, keyset.key, cursor, batch_size, binds=keyset.binds
        )
        conn.commit()
        if upper is None or count == 0:
            return
        copy_batch(conn, cursor, upper)
        execute(
            conn,
            f"UPDATE {STATE_TABLE} SET {assignments}, "
            f"{keyset.counter} = {keyset.counter} + %s, BatchesCopied = BatchesCopied + 1, "
            "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
            (*upper, count),
        )
        conn.commit()
        cursor = upper
        yield upper, count


def copy_in_batches(
    conn: Connection,
    state: MigrationState,
    *,
    table: str,
    copy_batch: Callable[[Connection, str | None, str], None],
    batch_size: int,
    progress: ProgressCallback | None,
    report: MigrationReport,
    log_as: str | None = None,
    finished: str = "Phase = 'copied'",
) -> None:
    """Walk `table`'s CanonicalId from the state row's cursor in batches, each copied by
    `copy_batch(conn, lower, upper)` and committed with its cursor, so an interrupted copy
    resumes after the last committed batch; then record `finished` (a SET clause of the state
    row). `log_as`: what a batch's rows are called in the log (None: not logged)."""
    copied, batches = state.rows_copied, state.batches
    estimated = estimated_rows(conn, table)
    start = None if state.cursor is None else (state.cursor,)
    for upper, count in walk_in_batches(
        conn,
        Keyset(table),
        start,
        lambda conn, lower, upper: copy_batch(conn, None if lower is None else lower[0], upper[0]),
        batch_size,
    ):
        cursor = upper[0]
        copied, batches = copied + count, batches + 1
        report.rows_copied, report.batches = copied, batches
        if log_as is not None:
            logger.info("copied %s %s (%s batches), cursor %r", copied, log_as, batches, cursor)
        if progress is not None:
            progress(Progress(Phase.COPYING.value, copied, batches, estimated, cursor))
    execute(
        conn,
        f"UPDATE {STATE_TABLE} SET {finished}, UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()


def copy_legacy_rows(
    conn: Connection,
    state: MigrationState,
    batch_size: int,
    progress: ProgressCallback | None,
    report: MigrationReport,
) -> None:
    """The legacy table into canonical_ids and identifiers_new, in keyset batches."""
    copy_in_batches(
        conn,
        state,
        table=LIVE_TABLE,
        copy_batch=lambda conn, lower, upper: _copy_rows(
            conn, LIVE_TABLE, NEW_TABLE, *range_condition("CanonicalId", lower, upper)
        ),
        batch_size=batch_size,
        progress=progress,
        report=report,
        log_as="legacy rows",
    )


@dataclass
class AppliedChanges:
    entries: int = 0  # change-log entries applied
    ids: set[str] = field(default_factory=set)  # the IDs they named
    row_delta: int = 0  # rows the target gained (negative: lost)


# A plain INSERT of re-copied rows can meet a source key a legacy write moved a moment earlier.
MAX_APPLY_ATTEMPTS = 5


# How a batch of logged IDs is re-copied: (conn, source, target, ids, fitting) -> row delta.
Recopy = Callable[[Connection, str, str, Sequence[str], Sequence[str]], int]


def apply_changes(
    conn: Connection,
    *,
    source: str,
    target: str,
    batch_size: int,
    max_entries: int | None = None,
    recopy: Recopy | None = None,
) -> AppliedChanges:
    """Re-copy the IDs in the change log from `source`'s current state.

    Each batch deletes its log rows in the same transaction as the re-copy, so it is applied
    exactly once even if the process dies; entries committed later by slow writers stay for the
    next pass. The target's change in row count is counted exactly, statement by statement, so
    the migration never has to count a whole table. `recopy` re-copies one batch of IDs: the
    legacy 1:1 table's by default; an adoption passes its own (`adopt`).
    """
    recopy = recopy or _recopy_ids
    applied = AppliedChanges()
    while max_entries is None or applied.entries < max_entries:
        rows = execute(
            conn,
            f"SELECT Seq, CanonicalId FROM {CHANGES_TABLE} ORDER BY Seq LIMIT {int(batch_size)}",
        )
        if not rows:
            break
        seqs = [seq for seq, _ in rows]
        ids = sorted({canonical for _, canonical in rows})
        fitting = [value for value in ids if fits_new_id_column(value)]
        if len(fitting) < len(ids):
            refuse_unfit_ids(conn, source, f"CanonicalId IN ({placeholders(ids)})", ids)
        applied.row_delta += recopy(conn, source, target, ids, fitting)
        execute(conn, f"DELETE FROM {CHANGES_TABLE} WHERE Seq IN ({placeholders(seqs)})", seqs)
        conn.commit()
        applied.entries += len(rows)
        applied.ids.update(ids)
    return applied


def _recopy_ids(
    conn: Connection, source: str, target: str, ids: Sequence[str], fitting: Sequence[str]
) -> int:
    """Replace the target's rows for these IDs with the source's current ones (uncommitted);
    return the change in the target's row count. `fitting`: those of the IDs the target's
    ASCII column can hold at all (the only ones it can have rows for)."""
    utf8 = {part: f"CONVERT(s.{part} USING utf8mb4) COLLATE utf8mb4_bin" for part in SOURCE_PARTS}
    in_ids = f"s.CanonicalId IN ({placeholders(ids)})"
    for attempt in range(1, MAX_APPLY_ATTEMPTS + 1):
        with conn.cursor() as cursor:
            removed = 0
            if fitting:
                cursor.execute(
                    f"DELETE FROM {target} WHERE CanonicalId IN ({placeholders(fitting)})",
                    list(fitting),
                )
                removed = cursor.rowcount
            # A source key these IDs hold now may still be in the copy under an older ID (a
            # legacy update moved it). That ID is logged too, maybe for a later batch; remove
            # the row now, so that what follows only inserts and the row count stays exact.
            # STRAIGHT_JOIN: the source's few rows (a primary-key range) drive, each finding its
            # target row by the target's primary key. Left to itself MySQL 9 may scan the whole
            # target instead, holding shared locks on the legacy rows the while.
            same_key = " AND ".join(f"t.{part} = {utf8[part]}" for part in SOURCE_PARTS)
            cursor.execute(
                f"DELETE t FROM {source} s STRAIGHT_JOIN {target} t ON {same_key} WHERE {in_ids}",
                list(ids),
            )
            removed += cursor.rowcount
        try:
            execute(
                conn,
                "INSERT INTO canonical_ids (CanonicalId, Status) SELECT s.CanonicalId, 'assigned' "
                f"FROM {source} s WHERE {in_ids} ON DUPLICATE KEY UPDATE Status = 'assigned'",
                list(ids),
            )
            with conn.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {target} (OntologyType, SourceSystem, SourceId, CanonicalId) "
                    f"SELECT s.OntologyType, s.SourceSystem, s.SourceId, s.CanonicalId "
                    f"FROM {source} s WHERE {in_ids}",
                    list(ids),
                )
                return cursor.rowcount - removed
        except pymysql.err.IntegrityError as error:
            # Without the lock a legacy write may move a key between the DELETE and the
            # INSERT; it is logged, so doing the batch again converges.
            conn.rollback()
            if error.args[0] != ER_DUP_ENTRY or attempt == MAX_APPLY_ATTEMPTS:
                raise LegacyMigrationError(
                    f"cannot re-copy legacy IDs into {target} ({error.args[-1]}); nothing of "
                    "this batch was applied",
                    offending=list(ids)[:EXAMPLES],
                ) from error
        except (pymysql.err.DataError, pymysql.err.InternalError, pymysql.err.OperationalError):
            conn.rollback()
            refuse_unfit_ids(conn, source, f"CanonicalId IN ({placeholders(ids)})", ids)
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def start_copy(conn: Connection) -> MigrationState:
    """Create the new table and the triggers, and the state row (each step is idempotent)."""
    refuse_unfit_ids(conn, LIVE_TABLE, "1 = 1", ())
    legacy_ddl = show_create_table(conn, LIVE_TABLE)
    if table_exists(conn, NEW_TABLE) and scalar(conn, f"SELECT COUNT(*) FROM {NEW_TABLE}"):
        raise LegacyMigrationError(
            f"{NEW_TABLE} already holds rows but no migration is recorded; run "
            "`idminter db rollback-legacy` to clear it, then migrate again"
        )
    execute(conn, new_identifiers_ddl(NEW_TABLE))
    install_log_triggers(conn, LIVE_TABLE)
    execute(
        conn,
        f"INSERT INTO {STATE_TABLE} (Id, Phase, LegacyCreateTable) VALUES (1, 'copying', %s)",
        (legacy_ddl,),
    )
    conn.commit()
    state = read_state(conn)
    assert state is not None
    return state
