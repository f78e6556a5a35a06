"""Forked registries: a test registry made from production's data must never hand out an ID that
production has handed out or will (docs/design/forks.md).

A fork (a database loaded with `idminter db load-dump`, an Aurora clone marked with
`idminter db mark-fork`) records itself in `registry_forks` and drops the free pool it copied:
production hands those IDs out later. From then on it tops its pool up and claims only from the
fork partition of the ID space (`core.canonical_ids.FORK`, first character `z`), which
production never generates nor claims from; the IDs production had already handed out before the
fork are in the fork's own `canonical_ids`, so its top-ups skip them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pymysql

from idminter_pipeline.core.canonical_ids import FORK, PRODUCTION, IdPartition
from idminter_pipeline.core.errors import IdMinterError
from idminter_pipeline.registry.connection import Connection, ConnectionFactory

FORKS_TABLE = "registry_forks"
ER_NO_SUCH_TABLE = 1146
# Free IDs deleted per statement when a fork drops its copied pool.
DROP_BATCH_SIZE = 10_000


class ForkMarkError(IdMinterError):
    """The registry cannot be marked as a fork (its schema is not migrated)."""


@dataclass(frozen=True)
class ForkStatus:
    is_fork: bool
    partition: str
    origin: str | None = None
    forked_at: datetime | None = None
    recorded_by: str | None = None
    free_ids_dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(conn: Connection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def fork_status(conn: Connection) -> ForkStatus:
    """Whether this registry is a fork (a registry without the table is not)."""
    try:
        rows = _rows(
            conn,
            f"SELECT Origin, ForkedAt, RecordedBy, FreeIdsDropped FROM {FORKS_TABLE} WHERE Id = 1",
        )
    except pymysql.err.ProgrammingError as error:
        if error.args[0] != ER_NO_SUCH_TABLE:
            raise
        rows = []
    if not rows:
        return ForkStatus(False, PRODUCTION.name)
    origin, forked_at, recorded_by, dropped = rows[0]
    return ForkStatus(True, FORK.name, origin, forked_at, recorded_by, int(dropped))


def registry_partition(conn: Connection) -> IdPartition:
    """The part of the ID space this registry generates and claims new IDs from."""
    return FORK if fork_status(conn).is_fork else PRODUCTION


def mark_fork(connect: ConnectionFactory, origin: str) -> ForkStatus:
    """Record that this registry is a fork of another and drop the free pool it copied.

    Idempotent: marking a fork again keeps its first record and drops any free ID outside the
    fork partition (a pool copied in again). A free ID that a mapping uses (a corrupted pool) is
    marked assigned instead, never deleted. Free IDs of the fork partition copied from a
    production that still held some (before migration 0007) are dropped too.
    """
    conn = connect()
    try:
        try:
            _rows(
                conn,
                f"INSERT INTO {FORKS_TABLE} (Id, Origin, RecordedBy) VALUES (1, %s, USER()) "
                "ON DUPLICATE KEY UPDATE Id = Id",
                (origin[:255],),
            )
        except pymysql.err.ProgrammingError as error:
            if error.args[0] != ER_NO_SUCH_TABLE:
                raise
            raise ForkMarkError(
                f"the registry lacks the {FORKS_TABLE} table (migration 0007): run "
                "`idminter db migrate` first"
            ) from None
        conn.commit()
        # Never delete what a mapping uses or used: such an ID is assigned, whatever the pool says.
        _rows(
            conn,
            "UPDATE canonical_ids c SET c.Status = 'assigned' WHERE c.Status = 'free' AND ("
            "EXISTS (SELECT 1 FROM identifiers i WHERE i.CanonicalId = c.CanonicalId) OR "
            "EXISTS (SELECT 1 FROM retired_canonical_ids r WHERE r.CanonicalId = c.CanonicalId) "
            "OR EXISTS (SELECT 1 FROM mapping_changes m WHERE m.CanonicalId = c.CanonicalId))",
        )
        conn.commit()
        dropped = 0
        while True:
            with conn.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM canonical_ids WHERE Status = 'free' "
                    f"ORDER BY Status, CanonicalId LIMIT {DROP_BATCH_SIZE}"
                )
                deleted = cursor.rowcount
            conn.commit()
            dropped += deleted
            if deleted < DROP_BATCH_SIZE:
                break
        _rows(
            conn,
            f"UPDATE {FORKS_TABLE} SET FreeIdsDropped = FreeIdsDropped + %s WHERE Id = 1",
            (dropped,),
        )
        conn.commit()
        return fork_status(conn)
    finally:
        conn.close()
