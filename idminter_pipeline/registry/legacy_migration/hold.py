"""Holding a legacy migration at its synced phase while this minter is shadowed.

`idminter db migrate-legacy --hold-synced` copies the legacy table, verifies the copy in both
directions and stops before the swap: the log triggers stay on the legacy table, the guard
triggers keep the copy (`identifiers_new`) written only by the migration, and the legacy
minter carries on writing `identifiers`. The copy is what `idminter shadow` reads.

`sync` keeps the copy in step for as long as that lasts: it applies what the legacy minter
wrote since (the change log), re-checking every applied ID in both directions, without a lock
and without a full re-verification. `lag` reads how far behind the copy is: the log's entries
and the age of the oldest. The swap is still `migrate-legacy` without `--hold-synced`.
"""

from __future__ import annotations

from typing import Any

from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration.conversion import (
    LEGACY,
    MAX_SYNC_ROUNDS,
    Lag,
    SyncReport,
    held_synced,
    lag,
    sync_held,
)
from idminter_pipeline.registry.legacy_migration.state import (
    DEFAULT_BATCH_SIZE,
    read_alone,
    read_migration_status,
    state_available,
)


def sync(connect: ConnectionFactory, *, batch_size: int = DEFAULT_BATCH_SIZE) -> SyncReport:
    """Apply the legacy minter's writes to the held copy, re-checking each applied ID."""
    return sync_held(connect, LEGACY, batch_size)


def read_hold_status(conn: Connection) -> dict[str, Any]:
    """Whether the migration holds at its synced phase, and the copy's lag, read on `conn` in
    its current transaction (cheap reads)."""
    result: dict[str, Any] = {"held_synced": held_synced(conn)}
    if state_available(conn):
        result["lag"] = lag(conn).as_dict()
    return result


def hold_status(connect: ConnectionFactory) -> dict[str, Any]:
    """`read_hold_status` on a connection of its own."""
    return read_alone(connect, read_hold_status)


def status_with_lag(connect: ConnectionFactory) -> dict[str, Any]:
    """`migration_status` and `hold_status` together, as `idminter db legacy-status` prints: read
    in one snapshot, so the figures agree while the legacy minter keeps writing (the change log
    counted at the top and under `lag` is the same log)."""
    conn = connect()
    try:
        with conn.cursor() as cursor:
            # Under repeatable read every plain read of the transaction sees the snapshot taken
            # at its start; the level is stated, not left to the server's configured default.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        result = {**read_migration_status(conn), **read_hold_status(conn)}
        conn.rollback()
        return result
    finally:
        conn.close()


__all__ = [
    "MAX_SYNC_ROUNDS",
    "Lag",
    "SyncReport",
    "held_synced",
    "hold_status",
    "lag",
    "read_hold_status",
    "status_with_lag",
    "sync",
]
