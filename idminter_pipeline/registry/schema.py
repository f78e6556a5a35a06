"""Versioned schema migrations (the SQL files in `sql/`), applied by yoyo-migrations.

yoyo takes a lock row in `yoyo_lock` before it applies anything, and we decide what to apply only
after holding that lock, so two runners started at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from idminter_pipeline.core.errors import SchemaMigrationError
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
    from yoyo.backends.core.mysql import MySQLBackend  # noqa: PLC0415
    from yoyo.connections import DatabaseURI  # noqa: PLC0415
    from yoyo.migrations import default_migration_table  # noqa: PLC0415

    first = connect()
    unused = [first]

    class RegistryMigrationBackend(MySQLBackend):
        # Connect through our factory so Secrets Manager credentials and session settings
        # apply, and no password ever sits in a URI that yoyo might log.
        def connect(self, dburi: DatabaseURI) -> object:
            return unused.pop() if unused else connect()

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


def apply_migrations(connect: ConnectionFactory) -> list[str]:
    """Apply pending migrations under yoyo's lock; return the versions applied by this call."""
    from yoyo.exceptions import LockTimeout  # noqa: PLC0415

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
