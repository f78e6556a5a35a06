"""The legacy migration's end: the final pass and swap, then finalize or rollback.

`final_pass_and_swap` takes `LOCK TABLES ... WRITE`, applies what is left of the change log
and re-checks only the IDs it named, releases the lock and swaps the names with one
`RENAME TABLE`; `finish_swap` applies any write that slipped in between and records the swap.
The legacy table is kept as `identifiers_legacy`: `finalize` drops it for good, `rollback`
puts it back (copying back the mappings minted since the swap when the 1:1 table can hold
them, else changing nothing and naming them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from idminter_pipeline.core.errors import LegacyMigrationError
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.invariants import install_mapping_guards, mapping_change_permit
from idminter_pipeline.registry.legacy_migration.conversion import (
    LEGACY,
    LegacyActionReport,
    admin_session,
    copy_back_since_swap,
    final_pass_and_rename,
    forget_conversion,
    record_finalized,
    record_swapped,
    stop_or_swap_back,
)
from idminter_pipeline.registry.legacy_migration.copy import apply_changes, drop_triggers
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    GUARD_TRIGGER_NAMES,
    KEPT_TABLE,
    LIVE_TABLE,
    NEW_TABLE,
    STATE_TABLE,
    TRIGGER_NAMES,
    MigrationReport,
    MigrationState,
    Phase,
    RegistryShape,
    clamp_batch_size,
    execute,
    is_legacy_shape,
    registry_shape,
)
from idminter_pipeline.registry.legacy_migration.verify import verify_ids
from idminter_pipeline.registry.schema import table_exists


def final_pass_and_swap(
    conn: Connection, batch_size: int, report: MigrationReport, copy_rows: int
) -> None:
    """The last logged changes applied and re-checked under the lock, the rename, the rest."""
    final_pass_and_rename(
        conn,
        LEGACY,
        batch_size,
        report,
        copy_rows,
        lock_tables=(
            f"{LIVE_TABLE} WRITE, {LIVE_TABLE} AS l READ, {LIVE_TABLE} AS s READ, "
            f"{NEW_TABLE} WRITE, {NEW_TABLE} AS n READ, {NEW_TABLE} AS t WRITE, "
            f"canonical_ids WRITE, canonical_ids AS c READ, {CHANGES_TABLE} WRITE, "
            f"{STATE_TABLE} WRITE"
        ),
        rename_tables=f"{LIVE_TABLE} TO {KEPT_TABLE}, {NEW_TABLE} TO {LIVE_TABLE}",
    )
    finish_swap(conn, batch_size, report)


def finish_swap(conn: Connection, batch_size: int, report: MigrationReport) -> None:
    late = apply_changes(conn, source=KEPT_TABLE, target=LIVE_TABLE, batch_size=batch_size)
    # The copy is the live table now: its invariant guards go on before the copy's own guard
    # comes off, so no moment is left in which a legacy minter still writing could delete or
    # re-key a mapping; then the new minter may write it.
    install_mapping_guards(conn, LIVE_TABLE)
    for name in GUARD_TRIGGER_NAMES:
        execute(conn, f"DROP TRIGGER IF EXISTS {name}")
    if late.entries:
        report.changes_applied += late.entries
        # One direction only: once live, the table may rightly gain aliases of legacy IDs.
        verify_ids(conn, KEPT_TABLE, LIVE_TABLE, late.ids, collation=None)
        report.messages.append(f"{late.entries} legacy writes between unlock and rename applied")
        if report.verified:
            report.new_rows = report.legacy_rows = report.new_rows + late.row_delta
    drop_triggers(conn)
    record_swapped(conn, report)


def finalize(connect: ConnectionFactory) -> LegacyActionReport:
    """Drop the kept legacy table after a swap. There is no rollback after this."""
    with admin_session(connect) as (conn, state):
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
        record_finalized(conn, triggers=TRIGGER_NAMES, tables=(KEPT_TABLE,))
        return LegacyActionReport("finalized", [f"dropped {KEPT_TABLE}"])


def _release_assigned_ids(conn: Connection, batch_size: int) -> int:
    """Delete assigned canonical IDs in batches (they came from the legacy copy, and the legacy
    table keeps them): a sanctioned change, so each batch holds the admin's permit."""
    deleted = 0
    while True:
        with (
            mapping_change_permit(conn, "rollback-legacy: IDs copied from the legacy table"),
            conn.cursor() as cursor,
        ):
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
    with admin_session(connect, wait_for_locks=True) as (conn, recorded):
        state, shape = recorded, registry_shape(conn)
        if state is None or state.phase is Phase.FINALIZED:
            if state is None and shape is RegistryShape.LEGACY and table_exists(conn, NEW_TABLE):
                state = MigrationState(Phase.COPYING, None, 0, 0, "", None)
            else:
                reason = "finalized; the legacy table is gone" if state else "not started"
                raise LegacyMigrationError(f"nothing to roll back: the migration is {reason}")
        report = stop_or_swap_back(
            conn,
            state,
            swap_back=lambda: _swap_back(conn, state),
            restored="the legacy table",
            triggers=TRIGGER_NAMES,
        )
        execute(conn, f"DROP TABLE IF EXISTS {NEW_TABLE}")
        released = _release_assigned_ids(conn, batch_size)
        forget_conversion(conn)
        report.messages.append(f"dropped {NEW_TABLE} and removed {released} copied canonical IDs")
        return report


def _swap_back(conn: Connection, state: MigrationState) -> int:
    if not table_exists(conn, KEPT_TABLE) or not is_legacy_shape(conn, KEPT_TABLE):
        raise LegacyMigrationError(f"{KEPT_TABLE} is missing; cannot restore the legacy table")

    def copy_back(first: Sequence[Sequence[Any]]) -> int:
        if not first:
            return 0
        with conn.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {KEPT_TABLE} (CanonicalId, OntologyType, SourceId, SourceSystem) "
                f"SELECT CanonicalId, OntologyType, SourceId, SourceSystem FROM {LIVE_TABLE} n "
                "WHERE n.CreatedAt > %s",
                (state.swapped_at,),
            )
            return cursor.rowcount

    copied = copy_back_since_swap(
        conn,
        lock_tables=f"{LIVE_TABLE} WRITE, {LIVE_TABLE} AS n READ, {KEPT_TABLE} WRITE",
        swapped_at=state.swapped_at,
        copy_back=copy_back,
        holder="the 1:1 legacy table",
    )
    execute(conn, f"RENAME TABLE {LIVE_TABLE} TO {NEW_TABLE}, {KEPT_TABLE} TO {LIVE_TABLE}")
    return copied
