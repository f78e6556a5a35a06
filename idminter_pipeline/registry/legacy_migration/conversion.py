"""The steps both online conversions share once their copy is made.

The legacy migration (`run`, `swap`, `hold`) and the adoption of a port-created registry
(`adopt`) differ in what they copy and how they compare a row with its copy; both keep their
copy in step through the same change log, in the same order. A `Conversion` names what
differs: how a batch of the log is applied, and how the IDs it named are re-checked. The
catch-up rounds, the final pass under the lock and the sync of a held copy are written once,
here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any, Protocol, TypeVar

import pymysql

from idminter_pipeline.core.errors import LegacyMigrationError
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration.copy import (
    AppliedChanges,
    apply_changes,
    copy_connection,
    trigger_names,
)
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    EXAMPLES,
    GUARD_TRIGGER_NAMES,
    LIVE_TABLE,
    LOCK_WAIT_TIMEOUT_SECONDS,
    NEW_TABLE,
    STATE_TABLE,
    MigrationReport,
    MigrationState,
    Phase,
    Progress,
    ProgressCallback,
    RegistryShape,
    clamp_batch_size,
    count_pending_changes,
    execute,
    migration_lock,
    read_state,
    registry_shape,
    require_state_tables,
    state_available,
)
from idminter_pipeline.registry.legacy_migration.verify import (
    legacy_id_collation,
    verify_copy,
    verify_ids,
)

# Catch-up passes stop once the log is this small; the rest is applied under the lock.
LOCKED_CATCH_UP_THRESHOLD = 2_000
MAX_CATCH_UP_ROUNDS = 50
# After the verification, unlocked catch-up rounds (each re-checking what it applied) run until
# the log is this small; only the rest is applied under the lock.
FINAL_PASS_THRESHOLD = 100
# One sync applies at most what was pending when it started, plus this many rounds' worth of
# what arrives meanwhile, so a busy writer cannot keep it going.
MAX_SYNC_ROUNDS = 20

# Applies the change log, at most `max_entries` of it (None: all), in batches of `batch_size`.
Apply = Callable[[Connection, int, "int | None"], AppliedChanges]
# Re-checks the given IDs row by row in both directions; `tolerate_pending`: an ID logged again
# since may differ.
Recheck = Callable[[Collection[str], bool], None]


class FullComparison(Protocol):
    """What a full comparison of a copy with its source reports."""

    @property
    def new_rows(self) -> int: ...  # the copy's rows: exact, only the conversion writes it

    @property
    def chunks(self) -> int: ...

    @property
    def chunks_compared_row_by_row(self) -> int: ...


@dataclass(frozen=True)
class Conversion:
    """What one kind of conversion does its own way."""

    apply: Apply
    # Reads what the re-check needs (the source's key collation) on `conn`; returns the re-check.
    rechecker: Callable[[Connection], Recheck]
    # Whether a verified copy waits for the swap at the synced phase; `not_held`: the refusal
    # of a sync when it does not.
    held: Callable[[Connection], bool]
    not_held: str
    # The full comparison of the copy with its source: (conn, *, batch_size, progress).
    verify: Callable[..., FullComparison]
    counted: str  # what the copy's rows are, in the comparison's report
    note: str = ""  # the end of that report


def copy_held(conn: Connection, guards: Collection[str], copy: str) -> bool:
    """The state row at `copied` and the guard triggers `guards` on the `copy` table."""
    state = read_state(conn) if state_available(conn) else None
    return (
        state is not None
        and state.phase is Phase.COPIED
        and set(guards) <= trigger_names(conn, copy)
    )


def held_synced(conn: Connection) -> bool:
    """A legacy table whose verified copy waits for the swap (triggers live, guard on)."""
    return registry_shape(conn) is RegistryShape.LEGACY and copy_held(
        conn, GUARD_TRIGGER_NAMES, NEW_TABLE
    )


def _legacy_recheck(conn: Connection) -> Recheck:
    collation = legacy_id_collation(conn, LIVE_TABLE)

    def recheck(ids: Collection[str], tolerate_pending: bool) -> None:
        verify_ids(conn, LIVE_TABLE, NEW_TABLE, ids, collation, tolerate_pending=tolerate_pending)

    return recheck


# The legacy 1:1 table into its copy: `apply_changes` re-copies, `verify_ids` compares.
LEGACY = Conversion(
    apply=lambda conn, batch_size, max_entries: apply_changes(
        conn, source=LIVE_TABLE, target=NEW_TABLE, batch_size=batch_size, max_entries=max_entries
    ),
    rechecker=_legacy_recheck,
    held=held_synced,
    verify=verify_copy,
    counted="rows",
    note=" (pending changes re-checked under lock)",
    not_held="no legacy migration holds at its synced phase: run `idminter db migrate-legacy "
    "--hold-synced` first",
)


@dataclass
class Lag:
    """How far a copy held at the synced phase is behind its source."""

    pending_changes: int
    oldest_pending_change_at: str | None
    lag_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lag(conn: Connection) -> Lag:
    """The change log's size and its oldest entry's age (an indexed read: the log is keyed by
    `Seq`, which follows arrival)."""
    count, oldest, now = execute(
        conn,
        f"SELECT COUNT(*), (SELECT ChangedAt FROM {CHANGES_TABLE} ORDER BY Seq LIMIT 1), "
        "CURRENT_TIMESTAMP(6) FROM " + CHANGES_TABLE,
    )[0]
    if oldest is None:
        return Lag(int(count), None, 0.0)
    oldest_utc = oldest.replace(tzinfo=UTC)
    seconds = max((now.replace(tzinfo=UTC) - oldest_utc).total_seconds(), 0.0)
    return Lag(int(count), oldest_utc.isoformat().replace("+00:00", "Z"), round(seconds, 3))


def rows_read(conn: Connection) -> int:
    """The session's Handler_read_* counters, summed: every row and index entry the server read
    for this session (both servers keep them; reading them reads no table)."""
    return sum(int(value) for _, value in execute(conn, "SHOW SESSION STATUS LIKE 'Handler_read%'"))


@contextmanager
def tables_locked(conn: Connection, tables: str) -> Iterator[None]:
    """`LOCK TABLES tables` for the block, released whatever happens in it."""
    execute(conn, f"LOCK TABLES {tables}")
    try:
        yield
    finally:
        execute(conn, "UNLOCK TABLES")


@contextmanager
def admin_session(
    connect: ConnectionFactory, *, wait_for_locks: bool = False
) -> Iterator[tuple[Connection, MigrationState | None]]:
    """A connection of its own under the migration lock, and the state row (the state tables
    required): what finalize and rollback run in. `wait_for_locks`: metadata locks are waited
    for as long as a migration waits for them."""
    with migration_lock(connect):
        conn = connect()
        try:
            if wait_for_locks:
                execute(conn, f"SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT_SECONDS}")
            require_state_tables(conn)
            yield conn, read_state(conn)
        finally:
            conn.close()


def copy_back_since_swap(
    conn: Connection,
    *,
    lock_tables: str,
    swapped_at: Any,
    copy_back: Callable[[Sequence[Sequence[Any]]], int],
    holder: str,
) -> int:
    """Under `LOCK TABLES lock_tables`, `copy_back(first)` copies what was written to the live
    mappings since the swap back to the kept source tables, given the first of those rows
    (for the error: `holder` cannot hold them all, and nothing changes); returns the mappings
    copied back."""
    with tables_locked(conn, lock_tables):
        first = execute(
            conn,
            f"SELECT CanonicalId, OntologyType, SourceSystem, SourceId FROM {LIVE_TABLE} n "
            f"WHERE n.CreatedAt > %s ORDER BY n.CreatedAt LIMIT {EXAMPLES}",
            (swapped_at,),
        )
        try:
            copied = copy_back(first)
        except pymysql.err.MySQLError as error:
            conn.rollback()
            raise LegacyMigrationError(
                f"mappings written since the swap cannot all be held by {holder} "
                f"({error.args[-1]}); nothing was rolled back. First of them",
                offending=[list(row) for row in first],
            ) from error
        conn.commit()
    return copied


@dataclass
class LegacyActionReport:
    status: str
    messages: list[str] = field(default_factory=list)
    rows_copied_back: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stop_or_swap_back(
    conn: Connection,
    state: MigrationState,
    *,
    swap_back: Callable[[], int],
    restored: str,
    triggers: Sequence[str],
) -> LegacyActionReport:
    """A rollback's first step: after the swap, `swap_back()` (the source, `restored`, back
    live, with the mappings written since); before it, the copy stopped (its `triggers`
    dropped)."""
    report = LegacyActionReport("rolled back")
    if state.phase is Phase.SWAPPED:
        report.rows_copied_back = swap_back()
        report.messages.append(
            f"restored {restored}; copied back {report.rows_copied_back} mappings written "
            "since the swap"
        )
    else:
        for name in triggers:
            execute(conn, f"DROP TRIGGER IF EXISTS {name}")
        report.messages.append("stopped the copy before the swap")
    return report


def forget_conversion(conn: Connection) -> None:
    """The change log and the state row emptied (committed): no conversion is recorded."""
    execute(conn, f"DELETE FROM {CHANGES_TABLE}")
    execute(conn, f"DELETE FROM {STATE_TABLE}")
    conn.commit()


def record_finalized(conn: Connection, *, triggers: Sequence[str], tables: Sequence[str]) -> None:
    """The triggers and the kept source `tables` dropped, the log emptied, the phase recorded."""
    for name in triggers:
        execute(conn, f"DROP TRIGGER IF EXISTS {name}")
    for table in tables:
        execute(conn, f"DROP TABLE IF EXISTS {table}")
    execute(conn, f"DELETE FROM {CHANGES_TABLE}")
    execute(
        conn,
        f"UPDATE {STATE_TABLE} SET Phase = 'finalized', "
        "FinalizedAt = CURRENT_TIMESTAMP(6), UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()


Report = TypeVar("Report", bound=MigrationReport)


def run_conversion(
    connect: ConnectionFactory,
    batch_size: int,
    run: Callable[[Connection, int], Report],
    *,
    prepare: Callable[[], None] | None = None,
) -> Report:
    """`run(conn, batch_size)` on a copy session under the migration lock (after `prepare`,
    if given), its report timed."""
    started = time.monotonic()
    batch_size = clamp_batch_size(batch_size)
    if prepare is not None:
        prepare()
    with migration_lock(connect):
        conn = copy_connection(connect)
        try:
            report = run(conn, batch_size)
        finally:
            conn.close()
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def catch_up(
    conn: Connection,
    conversion: Conversion,
    batch_size: int,
    progress: ProgressCallback | None,
    report: MigrationReport,
) -> None:
    """Apply the log without a lock until only a little is left."""
    for _ in range(MAX_CATCH_UP_ROUNDS):
        report.changes_applied += conversion.apply(conn, batch_size, None).entries
        pending = count_pending_changes(conn)
        conn.commit()
        if progress is not None:
            progress(Progress("catching up", report.rows_copied, report.batches, 0, None, pending))
        if pending <= LOCKED_CATCH_UP_THRESHOLD:
            break


def catch_up_verified(
    conn: Connection,
    conversion: Conversion,
    batch_size: int,
    progress: ProgressCallback | None,
    report: MigrationReport,
) -> int:
    """Apply what was written during the verification, without a lock, re-checking each
    applied ID both ways, until the log is small; return the copy's change in row count.

    An ID changed again after its re-check is logged again, so the lock still sees it: the
    lock then holds only for the writes of the last round's few seconds, not for those of the
    whole verification (minutes at 50 million rows).
    """
    recheck = conversion.rechecker(conn)
    row_delta = 0
    for _ in range(MAX_CATCH_UP_ROUNDS):
        pending = count_pending_changes(conn)
        conn.commit()
        if progress is not None:
            progress(
                Progress("catching up after verification", report.rows_copied, 0, 0, None, pending)
            )
        if pending <= FINAL_PASS_THRESHOLD:
            break
        # At most what is pending now, so a busy writer cannot keep a round going.
        applied = conversion.apply(conn, batch_size, pending)
        recheck(applied.ids, True)
        conn.commit()
        report.changes_applied += applied.entries
        row_delta += applied.row_delta
    return row_delta


def verify_then_catch_up(
    conn: Connection,
    conversion: Conversion,
    batch_size: int,
    progress: ProgressCallback | None,
    report: MigrationReport,
    *,
    swap: bool,
) -> int | None:
    """Catch up without a lock, then the full comparison. Held (not `swap`): report the copy
    verified and return None. Else catch up again, re-checking each applied ID, and return the
    copy's row count."""
    catch_up(conn, conversion, batch_size, progress, report)
    verification = conversion.verify(conn, batch_size=batch_size, progress=progress)
    rows = verification.new_rows
    report.messages.append(
        f"full comparison passed in both directions: {rows} {conversion.counted} in "
        f"{verification.chunks} chunks, {verification.chunks_compared_row_by_row} compared row "
        f"by row{conversion.note}"
    )
    if not swap:
        # Held at the synced phase: the full comparison above is the verification it reports.
        report.verified, report.new_rows = True, rows
        report.status = "copied and verified; not swapped"
        return None
    return rows + catch_up_verified(conn, conversion, batch_size, progress, report)


def final_pass_and_rename(
    conn: Connection,
    conversion: Conversion,
    batch_size: int,
    report: MigrationReport,
    copy_rows: int,
    *,
    lock_tables: str,
    rename_tables: str,
) -> None:
    """Apply the last logged changes and re-check their IDs under `LOCK TABLES lock_tables`,
    then `RENAME TABLE rename_tables`.

    The lock covers work proportional to the change log only: the verification and the
    re-checked catch-up rounds since have proved both sides equal except for logged IDs, and
    the guard triggers kept everyone else from writing the copy. `copy_rows` is the copy's row
    count as of now, derived from the verification's exact count and the changes applied since.
    """
    recheck = conversion.rechecker(conn)
    locked_at = time.monotonic()
    rows_read_before = rows_read(conn)
    with tables_locked(conn, lock_tables):
        applied = conversion.apply(conn, batch_size, None)
        recheck(applied.ids, False)
        report.changes_applied += applied.entries
        report.changes_applied_under_lock = applied.entries
        # Derived, not counted. Equal in both directions, the source has as many rows.
        report.new_rows = report.legacy_rows = copy_rows + applied.row_delta
        conn.commit()
    # Read outside the lock (COMMIT and UNLOCK TABLES read no rows), so it holds only what it must.
    report.lock_rows_read = rows_read(conn) - rows_read_before
    report.verified = True
    # MariaDB refuses RENAME TABLE under LOCK TABLES; a write landing in this gap is logged by
    # the triggers, which move with the table, and applied when the swap is finished.
    execute(conn, f"RENAME TABLE {rename_tables}")
    report.lock_seconds = round(time.monotonic() - locked_at, 3)


@dataclass
class SyncReport:
    changes_applied: int
    ids_rechecked: int
    lag: Lag
    duration_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lag": self.lag.as_dict()}


def sync_held(connect: ConnectionFactory, conversion: Conversion, batch_size: int) -> SyncReport:
    """Apply the writes since to a copy held at the synced phase (else refused), re-checking
    each applied ID."""
    started = time.monotonic()
    batch_size = clamp_batch_size(batch_size)
    with migration_lock(connect):
        conn = copy_connection(connect)
        try:
            if not conversion.held(conn):
                conn.rollback()
                raise LegacyMigrationError(conversion.not_held)
            applied_total, rechecked, remaining = _sync_held_copy(conn, conversion, batch_size)
        finally:
            conn.close()
    return SyncReport(applied_total, rechecked, remaining, round(time.monotonic() - started, 3))


def _sync_held_copy(
    conn: Connection, conversion: Conversion, batch_size: int
) -> tuple[int, int, Lag]:
    recheck = conversion.rechecker(conn)
    applied_total = rechecked = 0
    for _ in range(MAX_SYNC_ROUNDS):
        pending = lag(conn).pending_changes
        conn.commit()
        if pending == 0:
            break
        applied = conversion.apply(conn, batch_size, pending)
        recheck(applied.ids, True)
        conn.commit()
        applied_total += applied.entries
        rechecked += len(applied.ids)
    remaining = lag(conn)
    conn.commit()
    return applied_total, rechecked, remaining


def record_swapped(conn: Connection, report: MigrationReport) -> None:
    """The swap recorded in the state row and the report."""
    execute(
        conn,
        f"UPDATE {STATE_TABLE} SET Phase = 'swapped', SwappedAt = CURRENT_TIMESTAMP(6), "
        "UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()
    report.swapped = True
    report.phase = Phase.SWAPPED.value
    report.status = "swapped"


__all__ = [
    "FINAL_PASS_THRESHOLD",
    "LEGACY",
    "LOCKED_CATCH_UP_THRESHOLD",
    "MAX_CATCH_UP_ROUNDS",
    "MAX_SYNC_ROUNDS",
    "Conversion",
    "Lag",
    "LegacyActionReport",
    "SyncReport",
    "admin_session",
    "catch_up",
    "catch_up_verified",
    "copy_back_since_swap",
    "copy_held",
    "final_pass_and_rename",
    "forget_conversion",
    "held_synced",
    "lag",
    "record_finalized",
    "record_swapped",
    "rows_read",
    "run_conversion",
    "stop_or_swap_back",
    "sync_held",
    "tables_locked",
    "verify_then_catch_up",
]
