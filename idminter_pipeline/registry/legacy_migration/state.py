"""The legacy migration's bookkeeping: table names, phases, the state row and the registry's shape.

Every phase module builds on this one: the names of the tables and triggers the migration
creates, the phases recorded in `legacy_migration_state`, progress and report records, the
named lock that lets one migration, rollback or finalize run at a time, the keyset step the copy
and the verification both walk the legacy key with, and `migration_status`, which reads where
a migration stands without scanning anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from idminter_pipeline.core.errors import LegacyMigrationError, SchemaMigrationError
from idminter_pipeline.core.limits import (
    LEGACY_DEFAULT_BATCH_SIZE,
    LEGACY_MAX_BATCH_SIZE,
    LEGACY_MIN_BATCH_SIZE,
    bounded_batch_size,
)
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.schema import migrations_dir, table_exists

LIVE_TABLE = "identifiers"
NEW_TABLE = "identifiers_new"
KEPT_TABLE = "identifiers_legacy"
STATE_TABLE = "legacy_migration_state"
CHANGES_TABLE = "legacy_migration_changes"
LOG_TRIGGER_NAMES = ("idminter_legacy_ai", "idminter_legacy_au", "idminter_legacy_ad")
GUARD_TRIGGER_NAMES = ("idminter_new_guard_bi", "idminter_new_guard_bu", "idminter_new_guard_bd")
TRIGGER_NAMES = LOG_TRIGGER_NAMES + GUARD_TRIGGER_NAMES
# Set in the migration's own sessions; the guard triggers on NEW_TABLE refuse every other writer.
MIGRATION_SESSION_VARIABLE = "@idminter_legacy_migration"
LEGACY_COLUMNS = ("CanonicalId", "OntologyType", "SourceId", "SourceSystem")
SOURCE_PARTS = ("OntologyType", "SourceSystem", "SourceId")

DEFAULT_BATCH_SIZE = LEGACY_DEFAULT_BATCH_SIZE
MIN_BATCH_SIZE = LEGACY_MIN_BATCH_SIZE
MAX_BATCH_SIZE = LEGACY_MAX_BATCH_SIZE
EXAMPLES = 10
# The server waits this long for metadata locks (triggers, rename) before giving up cleanly.
LOCK_WAIT_TIMEOUT_SECONDS = 60
MIGRATION_LOCK = "idminter_legacy_migration"


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
    """Within [MIN_BATCH_SIZE, MAX_BATCH_SIZE]; below 1 refused, naming it."""
    return bounded_batch_size(batch_size, minimum=MIN_BATCH_SIZE, maximum=MAX_BATCH_SIZE)


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
    changes_applied_under_lock: int = 0
    legacy_rows: int = 0
    new_rows: int = 0
    verified: bool = False
    swapped: bool = False
    duration_seconds: float = 0.0
    lock_seconds: float = 0.0
    # Rows the server read while the final lock was held (Handler_read_* deltas): grows with the
    # changes applied under the lock, not with the table.
    lock_rows_read: int = 0
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def execute(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> Any:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def scalar(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> Any:
    rows = execute(conn, sql, params)
    return rows[0][0] if rows else None


def table_columns(conn: Connection, table: str) -> list[str]:
    rows = execute(
        conn,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [name for (name,) in rows]


def is_legacy_shape(conn: Connection, table: str) -> bool:
    """The legacy 1:1 table: the four legacy columns, no CreatedAt, primary key on CanonicalId."""
    columns = table_columns(conn, table)
    if sorted(columns) != sorted(LEGACY_COLUMNS):
        return False
    primary = execute(
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


def state_available(conn: Connection) -> bool:
    return table_exists(conn, STATE_TABLE) and table_exists(conn, CHANGES_TABLE)


def require_state_tables(conn: Connection) -> None:
    if not state_available(conn):
        raise SchemaMigrationError(
            f"the registry lacks the {STATE_TABLE} tables (migration 0004): run "
            "`idminter db migrate` first"
        )


@dataclass(frozen=True)
class MigrationState:
    phase: Phase
    cursor: str | None
    rows_copied: int
    batches: int
    legacy_create_table: str
    swapped_at: Any


def read_state(conn: Connection, *, for_update: bool = False) -> MigrationState | None:
    if not state_available(conn):
        return None
    rows = execute(
        conn,
        f"SELECT Phase, CopyCursor, RowsCopied, BatchesCopied, LegacyCreateTable, SwappedAt "
        f"FROM {STATE_TABLE} WHERE Id = 1" + (" FOR UPDATE" if for_update else ""),
    )
    if not rows:
        return None
    phase, cursor, copied, batches, ddl, swapped_at = rows[0]
    return MigrationState(Phase(phase), cursor, copied, batches, ddl, swapped_at)


def show_create_table(conn: Connection, table: str) -> str:
    return execute(conn, f"SHOW CREATE TABLE `{table}`")[0][1]


def count_pending_changes(conn: Connection) -> int:
    return int(scalar(conn, f"SELECT COUNT(*) FROM {CHANGES_TABLE}") or 0)


def estimated_rows(conn: Connection, table: str) -> int:
    # Statistics, not a scan: only for progress reporting.
    value = scalar(
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


@contextmanager
def migration_lock(connect: ConnectionFactory) -> Iterator[None]:
    """One migration, rollback or finalize at a time per registry (a server-side named lock)."""
    conn = connect()
    try:
        got = scalar(conn, "SELECT GET_LOCK(CONCAT(DATABASE(), %s), 0)", (MIGRATION_LOCK,))
        if got != 1:
            raise LegacyMigrationError(
                "another legacy migration, rollback or finalize is running on this registry"
            )
        try:
            yield
        finally:
            execute(conn, "SELECT RELEASE_LOCK(CONCAT(DATABASE(), %s))", (MIGRATION_LOCK,))
    finally:
        conn.close()


def placeholders(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def fits_new_id_column(value: str) -> bool:
    return len(value) <= 8 and value.isascii()


# A keyset position: the key columns' values, in the key's order.
Key = tuple[str, ...]


def next_bound_in(
    conn: Connection, table: str, cursor: str | None, size: int
) -> tuple[str | None, int]:
    """The CanonicalId `size` entries after `cursor` and how many keys that is (fewer at the
    end): `next_key_bound` on that one column."""
    upper, count = next_key_bound(
        conn, table, ("CanonicalId",), None if cursor is None else (cursor,), size
    )
    return (upper[0] if upper else None), count


def next_key_bound(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    cursor: Key | None,
    size: int,
    *,
    binds: Sequence[str] | None = None,
) -> tuple[Key | None, int]:
    """The key (`columns`, an index's leading columns in order) `size` entries after `cursor`,
    and how many entries that is (fewer at the end). `binds`: how each cursor value is written
    to compare with its column (`%s` when None).

    LIMIT 1 OFFSET reads the index range without materializing it (a derived table of 200,000
    keys would spill to an on-disk temporary table).
    """
    where, params = key_range_condition(columns, cursor, None, binds)
    listed = ", ".join(columns)
    rows = execute(
        conn,
        f"SELECT {listed} FROM {table} WHERE {where} ORDER BY {listed} "
        f"LIMIT 1 OFFSET {int(size) - 1}",
        params,
    )
    if rows:
        return tuple(rows[0]), int(size)
    count = int(scalar(conn, f"SELECT COUNT(*) FROM {table} WHERE {where}", params) or 0)
    if count == 0:
        return None, 0
    descending = ", ".join(f"{column} DESC" for column in columns)
    last = execute(
        conn, f"SELECT {listed} FROM {table} WHERE {where} ORDER BY {descending} LIMIT 1", params
    )
    return tuple(last[0]), count


def _beyond(
    columns: Sequence[str], key: Key, binds: Sequence[str], strict: str, last: str
) -> tuple[str, list[str]]:
    """`(columns) <op> key` in lexicographic order, spelled out column by column (both servers'
    range optimizers turn that into index ranges; a row comparison they would scan for):
    `strict` compares the leading columns, `last` the final one."""
    column, bind, value = columns[-1], binds[-1], key[-1]
    condition, params = f"{column} {last} {bind}", [value]
    for column, bind, value in zip(
        reversed(columns[:-1]), reversed(binds[:-1]), reversed(key[:-1]), strict=True
    ):
        condition = f"{column} {strict} {bind} OR ({column} = {bind} AND ({condition}))"
        params = [value, value, *params]
    return f"({condition})", params


def key_range_condition(
    columns: Sequence[str],
    lower: Key | None,
    upper: Key | None,
    binds: Sequence[str] | None = None,
) -> tuple[str, list[str]]:
    """`lower < (columns) <= upper` in the key's order, either end open when None; `binds`:
    how each value is written to compare with its column (`%s` when None)."""
    binds = list(binds) if binds is not None else ["%s"] * len(columns)
    conditions, params = [], []
    if lower is not None:
        condition, values = _beyond(columns, lower, binds, ">", ">")
        conditions.append(condition)
        params.extend(values)
    if upper is not None:
        condition, values = _beyond(columns, upper, binds, "<", "<=")
        conditions.append(condition)
        params.extend(values)
    return " AND ".join(conditions) or "1 = 1", params


def range_condition(column: str, lower: str | None, upper: str | None) -> tuple[str, list[str]]:
    """`lower < column <= upper`, either end open when None."""
    return key_range_condition(
        (column,),
        None if lower is None else (lower,),
        None if upper is None else (upper,),
    )


def column_collation(conn: Connection, table: str, column: str) -> str:
    """The column's character set and collation, as `latin1 COLLATE latin1_swedish_ci`: what a
    value is converted to so that comparing it with the column can use the column's index."""
    rows = execute(
        conn,
        "SELECT character_set_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s",
        (table, column),
    )
    charset, collation = rows[0] if rows else (None, None)
    if not (re.fullmatch(r"\w+", charset or "") and re.fullmatch(r"\w+", collation or "")):
        raise LegacyMigrationError(
            f"cannot read the character set and collation of {table}.{column}",
            offending=[charset, collation],
        )
    return f"{charset} COLLATE {collation}"


def read_migration_status(conn: Connection) -> dict[str, Any]:
    """Where a legacy migration stands, read on `conn` in its current transaction (no scans)."""
    state = read_state(conn)
    return {
        "shape": registry_shape(conn).value,
        "phase": state.phase.value if state else Phase.NONE.value,
        "rows_copied": state.rows_copied if state else 0,
        "legacy_table_kept": table_exists(conn, KEPT_TABLE),
        "pending_changes": count_pending_changes(conn) if state_available(conn) else 0,
    }


def read_alone(connect: ConnectionFactory, read: Callable[[Connection], Any]) -> Any:
    """`read(conn)` on a connection of its own, its transaction rolled back after."""
    conn = connect()
    try:
        result = read(conn)
        conn.rollback()
        return result
    finally:
        conn.close()


def migration_status(connect: ConnectionFactory) -> dict[str, Any]:
    """Where a legacy migration stands (cheap: no scans)."""
    return read_alone(connect, read_migration_status)


def migration_phase(conn: Connection) -> Phase:
    """The phase a legacy migration stands at; `NONE` before one starts or without its tables."""
    state = read_state(conn)
    return state.phase if state else Phase.NONE


def pending_changes(conn: Connection) -> int | None:
    """Changes to the legacy table not yet applied to the copy; None without the state tables."""
    return count_pending_changes(conn) if state_available(conn) else None
