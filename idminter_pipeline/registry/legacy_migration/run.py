"""The legacy migration run: `migrate` takes a legacy registry through every phase, in order.

Start (or resume from the state row), copy, catch up without a lock until the change log is
small, install the guard triggers, verify the whole copy, catch up again re-checking each
applied ID, then the final pass under the lock and the swap. An interrupted run picks up where
the last committed step left it, a swap interrupted after the rename included; a registry that
is not legacy is left alone ("nothing to do").
"""

from __future__ import annotations

import logging

from idminter_pipeline.core.errors import LegacyMigrationError
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration.conversion import (
    FINAL_PASS_THRESHOLD,
    LEGACY,
    LOCKED_CATCH_UP_THRESHOLD,
    MAX_CATCH_UP_ROUNDS,
    run_conversion,
    verify_then_catch_up,
)
from idminter_pipeline.registry.legacy_migration.copy import (
    copy_legacy_rows,
    install_guard_triggers,
    start_copy,
)
from idminter_pipeline.registry.legacy_migration.state import (
    DEFAULT_BATCH_SIZE,
    KEPT_TABLE,
    NEW_TABLE,
    MigrationReport,
    Phase,
    ProgressCallback,
    RegistryShape,
    execute,
    read_state,
    registry_shape,
    require_state_tables,
    state_available,
)
from idminter_pipeline.registry.legacy_migration.swap import final_pass_and_swap, finish_swap
from idminter_pipeline.registry.schema import table_exists

logger = logging.getLogger(__name__)


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
    report = run_conversion(
        connect, batch_size, lambda conn, batch_size: _migrate(conn, batch_size, progress, swap)
    )
    logger.info("legacy migration: %s", report.status)
    return report


def _migrate(
    conn: Connection, batch_size: int, progress: ProgressCallback | None, swap: bool
) -> MigrationReport:
    shape = registry_shape(conn)
    state = read_state(conn) if state_available(conn) else None
    phase = state.phase if state else Phase.NONE
    report = MigrationReport("", shape.value, phase.value)
    if shape is RegistryShape.MIGRATED and phase is Phase.COPIED and table_exists(conn, KEPT_TABLE):
        # Interrupted between the rename and recording it: finish the bookkeeping.
        finish_swap(conn, batch_size, report)
        report.messages.append("completed a swap interrupted after the rename")
        return report
    if shape is not RegistryShape.LEGACY:
        conn.rollback()
        return _nothing_to_do(report, shape, phase)
    require_state_tables(conn)
    if state is None:
        state = start_copy(conn)
        report.messages.append("started: triggers installed, identifiers_new created")
    elif phase not in (Phase.COPYING, Phase.COPIED):
        raise LegacyMigrationError(f"unexpected migration phase {phase.value} on a legacy table")
    else:
        report.messages.append(f"resuming after {state.rows_copied} rows ({phase.value})")
    report.rows_copied, report.batches = state.rows_copied, state.batches
    if state.phase is Phase.COPYING:
        copy_legacy_rows(conn, state, batch_size, progress, report)
    report.phase = Phase.COPIED.value
    install_guard_triggers(conn)
    # The copy was filled faster than InnoDB's background statistics follow: MySQL 9 then plans
    # the later look-ups by a handful of IDs as scans of the whole copy (held under the final
    # lock, too). A fresh sample of its indexes (a few pages each) keeps them index look-ups.
    execute(conn, f"ANALYZE TABLE {NEW_TABLE}")

    copy_rows = verify_then_catch_up(conn, LEGACY, batch_size, progress, report, swap=swap)
    if copy_rows is not None:
        final_pass_and_swap(conn, batch_size, report, copy_rows)
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


__all__ = [
    "FINAL_PASS_THRESHOLD",
    "LOCKED_CATCH_UP_THRESHOLD",
    "MAX_CATCH_UP_ROUNDS",
    "migrate",
]
