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
4. From then on, triggers on `identifiers_new` refuse writes from any session but the
   migration's, so nothing changes the copy between its verification and the swap unseen.
5. A full, chunked, set-based comparison runs without a lock, in both directions: every legacy
   row is in the new tables and every row of the new table is a legacy row. A difference is
   tolerated only when that ID has a pending log entry.
6. What the legacy minter wrote during the verification is applied without a lock, each
   applied ID re-checked both ways, until the log is small (an ID changed again is logged
   again).
7. Under `LOCK TABLES ... WRITE` the rest of the log is applied and the IDs it touched are
   compared row by row in both directions. That is all the lock covers, so it lasts as long as
   the last few seconds' writes take to apply, whatever the size of the table. No row count is
   read: the verification counted the copy exactly and every change since is counted as it is
   applied. Then the lock is released and one `RENAME TABLE` swaps the names. A write that
   slips in between is still logged (the triggers move with the table) and applied right after
   the rename.

The legacy table is kept as `identifiers_legacy` until `finalize`; `rollback` restores it.
"""

from __future__ import annotations

import logging
import time

from idminter_pipeline.errors import LegacyMigrationError
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration.copy import (
    ER_DUP_ENTRY,
    MAX_APPLY_ATTEMPTS,
    AppliedChanges,
    _copy,
    _copy_connection,
    _install_guard_triggers,
    _start,
    apply_changes,
)
from idminter_pipeline.registry.legacy_migration.dry_run import (
    BAD_SOURCE_PART_PATTERN,
    CANONICAL_ID_PATTERN,
    DryRunReport,
    Finding,
    dry_run,
)
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    EXAMPLES,
    GUARD_TRIGGER_NAMES,
    KEPT_TABLE,
    LEGACY_COLUMNS,
    LIVE_TABLE,
    LOCK_WAIT_TIMEOUT_SECONDS,
    LOG_TRIGGER_NAMES,
    MAX_BATCH_SIZE,
    MIGRATION_LOCK,
    MIGRATION_SESSION_VARIABLE,
    MIN_BATCH_SIZE,
    NEW_TABLE,
    STATE_TABLE,
    TRIGGER_NAMES,
    MigrationReport,
    Phase,
    Progress,
    ProgressCallback,
    RegistryShape,
    _migration_lock,
    _pending_changes,
    _read_state,
    _require_state_tables,
    _state_available,
    clamp_batch_size,
    is_legacy_shape,
    migration_status,
    new_identifiers_ddl,
    registry_shape,
    show_create_table,
)
from idminter_pipeline.registry.legacy_migration.swap import (
    LegacyActionReport,
    _final_pass_and_swap,
    _finish_swap,
    finalize,
    rollback,
)
from idminter_pipeline.registry.legacy_migration.verify import (
    MAX_EXCLUDED_PER_CHUNK,
    MAX_REPORTED,
    Verification,
    _legacy_id_collation,
    _verify_ids,
    verify_copy,
)
from idminter_pipeline.registry.schema import table_exists

__all__ = [
    "BAD_SOURCE_PART_PATTERN",
    "CANONICAL_ID_PATTERN",
    "CHANGES_TABLE",
    "DEFAULT_BATCH_SIZE",
    "ER_DUP_ENTRY",
    "EXAMPLES",
    "FINAL_PASS_THRESHOLD",
    "GUARD_TRIGGER_NAMES",
    "KEPT_TABLE",
    "LEGACY_COLUMNS",
    "LIVE_TABLE",
    "LOCKED_CATCH_UP_THRESHOLD",
    "LOCK_WAIT_TIMEOUT_SECONDS",
    "LOG_TRIGGER_NAMES",
    "MAX_APPLY_ATTEMPTS",
    "MAX_BATCH_SIZE",
    "MAX_CATCH_UP_ROUNDS",
    "MAX_EXCLUDED_PER_CHUNK",
    "MAX_REPORTED",
    "MIGRATION_LOCK",
    "MIGRATION_SESSION_VARIABLE",
    "MIN_BATCH_SIZE",
    "NEW_TABLE",
    "STATE_TABLE",
    "TRIGGER_NAMES",
    "AppliedChanges",
    "DryRunReport",
    "Finding",
    "LegacyActionReport",
    "MigrationReport",
    "Phase",
    "Progress",
    "ProgressCallback",
    "RegistryShape",
    "Verification",
    "apply_changes",
    "clamp_batch_size",
    "dry_run",
    "finalize",
    "is_legacy_shape",
    "migrate",
    "migration_status",
    "new_identifiers_ddl",
    "registry_shape",
    "rollback",
    "show_create_table",
    "verify_copy",
]

logger = logging.getLogger(__name__)


# Catch-up passes stop once the log is this small; the rest is applied under the lock.
LOCKED_CATCH_UP_THRESHOLD = 2_000
MAX_CATCH_UP_ROUNDS = 50
# After the verification, unlocked catch-up rounds (each re-checking what it applied) run until
# the log is this small; only the rest is applied under the lock.
FINAL_PASS_THRESHOLD = 100


# --------------------------------------------------------------------------------------------
# Migrate


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
    _install_guard_triggers(conn)

    # Catch up without a lock until only a little is left.
    for _ in range(MAX_CATCH_UP_ROUNDS):
        report.changes_applied += apply_changes(
            conn, source=LIVE_TABLE, target=NEW_TABLE, batch_size=batch_size
        ).entries
        pending = _pending_changes(conn)
        conn.commit()
        if progress is not None:
            progress(Progress("catching up", report.rows_copied, report.batches, 0, None, pending))
        if pending <= LOCKED_CATCH_UP_THRESHOLD:
            break
    verification = verify_copy(conn, batch_size=batch_size, progress=progress)
    report.messages.append(
        f"full comparison passed in both directions: {verification.new_rows} rows in "
        f"{verification.chunks} chunks, {verification.chunks_compared_row_by_row} compared row "
        "by row (pending changes re-checked under lock)"
    )
    if not swap:
        report.status = "copied and verified; not swapped"
        return report
    copy_rows = verification.new_rows + _catch_up_verified(conn, batch_size, progress, report)
    _final_pass_and_swap(conn, batch_size, report, copy_rows)
    return report


def _catch_up_verified(
    conn: Connection, batch_size: int, progress: ProgressCallback | None, report: MigrationReport
) -> int:
    """Apply what the legacy minter wrote during the verification, without a lock, re-checking
    each applied ID both ways, until the log is small; return the copy's change in row count.

    An ID changed again after its re-check is logged again, so the lock still sees it: the
    lock then holds only for the writes of the last round's few seconds, not for those of the
    whole verification (minutes at 50 million rows).
    """
    collation = _legacy_id_collation(conn, LIVE_TABLE)
    row_delta = 0
    for _ in range(MAX_CATCH_UP_ROUNDS):
        pending = _pending_changes(conn)
        conn.commit()
        if progress is not None:
            progress(
                Progress("catching up after verification", report.rows_copied, 0, 0, None, pending)
            )
        if pending <= FINAL_PASS_THRESHOLD:
            break
        # At most what is pending now, so a busy legacy minter cannot keep a round going.
        applied = apply_changes(
            conn, source=LIVE_TABLE, target=NEW_TABLE, batch_size=batch_size, max_entries=pending
        )
        _verify_ids(conn, LIVE_TABLE, NEW_TABLE, applied.ids, collation, tolerate_pending=True)
        conn.commit()
        report.changes_applied += applied.entries
        row_delta += applied.row_delta
    return row_delta


def _nothing_to_do(report: MigrationReport, shape: RegistryShape, phase: Phase) -> MigrationReport:
    report.status = "nothing to do"
    if shape is RegistryShape.MISSING:
        report.messages.append("no identifiers table: apply the schema first")
    elif phase is Phase.SWAPPED:
        report.messages.append(f"already migrated; {KEPT_TABLE} is kept until finalize")
    else:
        report.messages.append("no legacy table: identifiers already has the RFC 083 shape")
    return report
