"""Versioned schema migrations (the SQL files in `sql/`), applied by yoyo-migrations.

yoyo takes a lock row in `yoyo_lock` before it applies anything, and we decide what to apply only
after holding that lock, so two runners started at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pymysql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from idminter_pipeline.core.errors import SchemaDriftError, SchemaMigrationError
from idminter_pipeline.core.settings import env_text, project_root
from idminter_pipeline.registry.connection import Connection, ConnectionFactory

if TYPE_CHECKING:
    from yoyo.backends.core.mysql import MySQLBackend
    from yoyo.migrations import MigrationList

# yoyo is imported by the functions that migrate, not here: `table_exists` is needed by most
# commands, and yoyo (with sqlparse and importlib_metadata) cost them 50-70 ms at start-up.

LOCK_TIMEOUT_SECONDS = 120


def migrations_dir() -> Path:
    """`sql/` in the source tree; deployments that install a wheel point IDMINTER_SQL_DIR at it."""
    return Path(env_text("IDMINTER_SQL_DIR") or project_root() / "sql")


@dataclass(frozen=True)
class MigrationState:
    version: str
    applied_at: datetime | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def _read_migrations() -> MigrationList:
    from yoyo import read_migrations  # noqa: PLC0415

    directory = migrations_dir()
    if not any(directory.glob("*.sql")):
        raise SchemaMigrationError(f"no SQL migrations found in {directory}")
    return read_migrations(str(directory))


@contextmanager
def _backend(connect: ConnectionFactory) -> Iterator[MySQLBackend]:
    from yoyo.backends.base import DatabaseBackend  # noqa: PLC0415
    from yoyo.backends.core.mysql import MySQLBackend  # noqa: PLC0415
    from yoyo.connections import DatabaseURI  # noqa: PLC0415
    from yoyo.migrations import default_migration_table  # noqa: PLC0415

    first = connect()
    unused = [first]
    sql_mode: list[str] = []

    class RegistryMigrationBackend(MySQLBackend):
        # Connect through our factory so Secrets Manager credentials and session settings
        # apply, and no password ever sits in a URI that yoyo might log.
        def connect(self, dburi: DatabaseURI) -> object:
            return unused.pop() if unused else connect()

        # yoyo asks the server for the session's sql_mode each time it quotes a name (its
        # tables, each savepoint): about 200 round trips in a full migration run. The mode holds
        # for the run: asked once, then quoted as yoyo would.
        def quote_identifier(self, identifier: str) -> str:
            if not sql_mode:
                sql_mode.append(self.execute("SHOW VARIABLES LIKE 'sql_mode'").fetchone()[1])
            if "ansi_quotes" in sql_mode[0].lower():
                return DatabaseBackend.quote_identifier(self, identifier)
            return f"`{identifier}`"

    # yoyo lists the tables of `uri.database` to find its own bookkeeping tables.
    database = first.db.decode() if isinstance(first.db, bytes) else str(first.db)
    uri = DatabaseURI("mysql", None, None, None, None, database, {})
    backend = RegistryMigrationBackend(uri, default_migration_table)
    try:
        backend.init_database()
        yield backend
    finally:
        backend.connection.close()


def _applied_at(backend: MySQLBackend) -> dict[str, datetime]:
    from yoyo.migrations import default_migration_table  # noqa: PLC0415

    backend.ensure_internal_schema_updated()
    table = backend.quote_identifier(default_migration_table)
    rows = backend.execute(f"SELECT migration_id, applied_at_utc FROM {table}").fetchall()
    return {version: applied_at for version, applied_at in rows}


def migration_status(connect: ConnectionFactory) -> list[MigrationState]:
    """Every migration in `sql/`, in order, with when it was applied (None if pending)."""
    migrations = _read_migrations()
    with _backend(connect) as backend:
        applied = _applied_at(backend)
        backend.rollback()
    return [MigrationState(m.id, applied.get(m.id)) for m in migrations]


def apply_migrations(connect: ConnectionFactory, *, adopting: bool = False) -> list[str]:
    """Apply pending migrations under yoyo's lock; return the versions applied by this call.

    A registry with tables that are not this project's (the reference port's) is refused,
    naming the differences: migrating would leave them as they are. `idminter db adopt` applies
    the migrations first (`adopting`), then converts the tables.
    """
    from yoyo.exceptions import LockTimeout  # noqa: PLC0415

    if not adopting:
        conn = connect()
        try:
            require_project_schema(
                conn, allow=(DriftKind.NOT_APPLIED, DriftKind.PENDING, DriftKind.LEGACY)
            )
        finally:
            conn.close()
    migrations = _read_migrations()
    with _backend(connect) as backend:
        try:
            with backend.lock(timeout=LOCK_TIMEOUT_SECONDS):
                pending = backend.to_apply(migrations)
                backend.apply_migrations(pending)
        except LockTimeout as error:
            raise SchemaMigrationError(f"could not take the migration lock: {error}") from error
        return [m.id for m in pending]


def rollback_migrations(connect: ConnectionFactory, *, count: int = 1) -> list[str]:
    """Roll back the `count` most recent migrations; return the versions rolled back."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    from yoyo.exceptions import LockTimeout  # noqa: PLC0415

    migrations = _read_migrations()
    with _backend(connect) as backend:
        try:
            with backend.lock(timeout=LOCK_TIMEOUT_SECONDS):
                to_roll_back = backend.to_rollback(migrations)[:count]
                backend.rollback_migrations(to_roll_back)
        except LockTimeout as error:
            raise SchemaMigrationError(f"could not take the migration lock: {error}") from error
        return [m.id for m in to_roll_back]


def table_exists(conn: Connection, table: str) -> bool:
    """Whether `table` exists in the connection's current database."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            (table,),
        )
        return bool(cursor.fetchone()[0])


# --- drift: a registry whose schema is not what sql/ builds ---------------------------------------
# The reference port's only migration (wellcomecollection/catalogue-pipeline, id_minter/migrations):
# it creates the RFC's tables as the RFC prints them, latin1 with a case-insensitive collation.
PORT_MIGRATION = "0001_create_identifiers_schema"
YOYO_MIGRATION_TABLE = "_yoyo_migration"
MIGRATE_COMMAND = "idminter db migrate"
ADOPT_COMMAND = "idminter db adopt"
MIGRATE_LEGACY_COMMAND = "idminter db migrate-legacy"
# Set on a connection whose registry passed `require_project_schema`: one check per connection.
SCHEMA_CHECKED_ATTRIBUTE = "_idminter_schema_checked"

_TEXT_KEY = ("utf8mb4", "utf8mb4_bin")
_ASCII_ID = ("ascii", "ascii_bin")
_NOT_TEXT = (None, None)
# The tables the minter reads and writes, as sql/ builds them and information_schema shows them
# (column type, character set, collation) on MariaDB 10.11, MySQL 8.0 and MySQL 9 alike.
EXPECTED_COLUMNS: dict[str, dict[str, tuple[str, str | None, str | None]]] = {
    "canonical_ids": {
        "CanonicalId": ("varchar(8)", *_ASCII_ID),
        "Status": ("enum('free','assigned')", *_ASCII_ID),
        "CreatedAt": ("timestamp(6)", *_NOT_TEXT),
        "AssignedAt": ("timestamp(6)", *_NOT_TEXT),
    },
    "identifiers": {
        "OntologyType": ("varchar(255)", *_TEXT_KEY),
        "SourceSystem": ("varchar(255)", *_TEXT_KEY),
        "SourceId": ("varchar(255)", *_TEXT_KEY),
        "CanonicalId": ("varchar(8)", *_ASCII_ID),
        "CreatedAt": ("timestamp(6)", *_NOT_TEXT),
    },
}
EXPECTED_TABLE_COLLATION = "utf8mb4_bin"
_LEGACY_COLUMNS = frozenset({"CanonicalId", "OntologyType", "SourceId", "SourceSystem"})


class DriftKind(StrEnum):
    NONE = "none"  # this project's schema, every migration applied
    NOT_APPLIED = "not applied"  # no schema at all
    PENDING = "pending migrations"
    LEGACY = "legacy 1:1 table"
    PORT = "not this project's tables"  # the port's (or any other) RFC tables: adopt them
    UNKNOWN_HISTORY = "unknown migrations"


_RESOLUTIONS = {
    DriftKind.NOT_APPLIED: MIGRATE_COMMAND,
    DriftKind.PENDING: MIGRATE_COMMAND,
    DriftKind.LEGACY: MIGRATE_LEGACY_COMMAND,
    DriftKind.PORT: ADOPT_COMMAND,
    # Applied by a release whose sql/ this one lacks: only that release's migrations know them.
    DriftKind.UNKNOWN_HISTORY: "idminter db status with IDMINTER_SQL_DIR at the sql/ of the "
    "release that applied them",
}


@dataclass(frozen=True)
class SchemaDrift:
    """How the registry differs from what sql/ builds (nothing, when `kind` is NONE)."""

    kind: DriftKind
    differences: tuple[str, ...] = ()

    @property
    def drifted(self) -> bool:
        return self.kind is not DriftKind.NONE

    @property
    def resolution(self) -> str | None:
        return _RESOLUTIONS.get(self.kind)

    def error(self) -> SchemaDriftError:
        return SchemaDriftError(self.differences, self.resolution or "")

    def as_dict(self) -> dict[str, object]:
        return {
            "drifted": self.drifted,
            "kind": self.kind.value,
            "differences": list(self.differences),
            "resolution": self.resolution,
        }


def migration_versions() -> list[str]:
    """The versions in sql/ (SQL and Python migrations), in order, from the file names alone (no
    yoyo import)."""
    return sorted(
        path.name.removesuffix(path.suffix)
        for path in migrations_dir().iterdir()
        if path.suffix in {".sql", ".py"}
        and not path.name.endswith(".rollback.sql")
        and not path.name.startswith("__")
    )


def _from_a_later_release(version: str, ours: set[str]) -> bool:
    """A migration this release does not have but a later one of this project applied: numbered
    past every migration here. Code of release N runs on the schema of N+1 (migrations only
    add: docs/operations/upgrades.md), so it is not drift."""
    number = version[:4]
    return number.isdigit() and version[4:5] == "_" and number > max(ours)[:4]


def _column_differences(
    table: str, found: dict[str, tuple[str, str | None, str | None]], table_collation: str | None
) -> list[str]:
    """What differs in one table; columns that differ alike are named together, so one line
    says `identifiers.OntologyType, SourceSystem, SourceId are latin1/latin1_swedish_ci`."""
    expected = EXPECTED_COLUMNS[table]
    missing = [name for name in expected if name not in found]
    alike: dict[tuple[str, str], list[str]] = {}
    for name, (column_type, charset, collation) in expected.items():
        if name not in found:
            continue
        got_type, got_charset, got_collation = found[name]
        if (got_charset, got_collation) != (charset, collation):
            key = (f"{got_charset}/{got_collation}", f"{charset}/{collation}")
            alike.setdefault(key, []).append(name)
        if got_type.lower() != column_type:
            alike.setdefault((got_type, column_type), []).append(name)
    differences = [
        f"{table}.{', '.join(names)} {'is' if len(names) == 1 else 'are'} {got}, this "
        f"project's {want}"
        for (got, want), names in alike.items()
    ]
    differences += [f"{table} has no column {name}" for name in missing]
    extra = sorted(set(found) - set(expected))
    if extra:
        differences.append(f"{table} has column(s) this project's has not: {', '.join(extra)}")
    if table_collation != EXPECTED_TABLE_COLLATION:
        differences.append(
            f"{table}'s default collation is {table_collation}, this project's "
            f"{EXPECTED_TABLE_COLLATION}"
        )
    return differences


def schema_drift(conn: Connection) -> SchemaDrift:
    """Compare the registry with what sql/ builds: one information_schema query for the tables
    and the two tables' columns, then yoyo's history when it exists. Reads only, and ends its
    own read (a rollback), so the caller's next transaction sees fresh data: call it before a
    connection's first transaction, as every caller does."""
    with conn.cursor() as cursor:
        # Each branch names its schema in WHERE: the servers then read that schema's tables
        # only (a join condition would make them open every table of every database).
        cursor.execute(
            "SELECT table_name, table_collation, NULL, NULL, NULL, NULL "
            "FROM information_schema.tables WHERE table_schema = DATABASE() "
            "UNION ALL SELECT table_name, NULL, column_name, column_type, character_set_name, "
            "collation_name FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND table_name IN ('identifiers', 'canonical_ids')"
        )
        rows = cursor.fetchall()
    tables: dict[str, str | None] = {}
    columns: dict[str, dict[str, tuple[str, str | None, str | None]]] = {}
    for table, table_collation, column, column_type, charset, collation in rows:
        if column is None:
            tables[table] = table_collation
        else:
            columns.setdefault(table, {})[column] = (column_type, charset, collation)
    history = _migration_history(conn) if YOYO_MIGRATION_TABLE in tables else set()
    conn.rollback()
    return _classify(tables, columns, history, migration_versions())


# yoyo creates its history table in its first layout (`id`) and upgrades it to the current one
# (`migration_id`) by dropping and recreating it under its lock; a second runner started at the
# same moment can read between those statements. The upgrade takes milliseconds: read again.
_HISTORY_IN_UPGRADE = (1054, 1146)  # unknown column, no such table


def _history_in_upgrade(error: BaseException) -> bool:
    return isinstance(error, pymysql.MySQLError) and error.args[0] in _HISTORY_IN_UPGRADE


def _migration_history(conn: Connection) -> set[str]:
    for attempt in Retrying(
        retry=retry_if_exception(_history_in_upgrade),
        stop=stop_after_attempt(20),
        wait=wait_fixed(0.1),
        before_sleep=lambda _state: conn.rollback(),
        reraise=True,
    ):
        with attempt, conn.cursor() as cursor:
            cursor.execute(f"SELECT migration_id FROM {YOYO_MIGRATION_TABLE}")
            return {version for (version,) in cursor.fetchall()}
    raise AssertionError("tenacity either returns or re-raises")


def _pending(pending: list[str]) -> SchemaDrift:
    return SchemaDrift(DriftKind.PENDING, (f"migration(s) not applied: {', '.join(pending)}",))


def _classify(
    tables: dict[str, str | None],
    columns: dict[str, dict[str, tuple[str, str | None, str | None]]],
    history: set[str],
    versions: list[str],
) -> SchemaDrift:
    ours = set(versions)
    pending = sorted(ours - history)
    if not history and not ({"identifiers", "canonical_ids"} & set(tables)):
        return SchemaDrift(
            DriftKind.NOT_APPLIED, ("the registry has no tables and no migration history",)
        )
    if set(columns.get("identifiers", {})) == _LEGACY_COLUMNS:
        # Migration 0001 leaves the legacy table for migrate-legacy to copy and swap.
        legacy = SchemaDrift(DriftKind.LEGACY, ("identifiers is the legacy 1:1 table",))
        return _pending(pending) if pending else legacy
    differences = []
    if PORT_MIGRATION in history:
        differences.append(f"created by the reference port (history holds {PORT_MIGRATION})")
    # The key columns next: theirs are the differences that change what a lookup matches.
    for table in ("identifiers", "canonical_ids"):
        if table in tables:
            differences.extend(_column_differences(table, columns.get(table, {}), tables[table]))
    # Columns a pending migration adds are not drift: migrating adds them.
    if pending and all(" has no column " in difference for difference in differences):
        return _pending(pending)
    if differences:
        return SchemaDrift(DriftKind.PORT, tuple(differences))
    unknown = (
        sorted(v for v in history - ours - {PORT_MIGRATION} if not _from_a_later_release(v, ours))
        if ours
        else []
    )
    if unknown:
        return SchemaDrift(
            DriftKind.UNKNOWN_HISTORY,
            (f"migration history holds {', '.join(unknown)}, which sql/ does not have",),
        )
    return SchemaDrift(DriftKind.NONE)


def require_project_schema(conn: Connection, *, allow: Collection[DriftKind] = ()) -> None:
    """Refuse (SchemaDriftError, naming the differences and the command that resolves them) a
    registry that is not this project's schema, but for the kinds of drift in `allow` (a
    command that reports them itself). Checked once per connection: the first use of a
    connection for work calls this, and later calls cost an attribute read."""
    if getattr(conn, SCHEMA_CHECKED_ATTRIBUTE, False):
        return
    drift = schema_drift(conn)
    if drift.drifted and drift.kind not in allow:
        raise drift.error()
    if not drift.drifted:
        setattr(conn, SCHEMA_CHECKED_ATTRIBUTE, True)
