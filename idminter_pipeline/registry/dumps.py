"""Loading a registry dump (`mysqldump` / `mariadb-dump` output) into a scratch database.

How a test registry is refreshed from a production snapshot without an Aurora clone: dump the
production `identifiers` table from a reader, then `idminter db load-dump FILE --database NAME`
loads it into a database of its own on the configured server (the project-local MariaDB by
default). The dump is run by the server's own command-line client (`mariadb`, or `mysql`), which
reads it as a stream: any size, the statements exactly as dumped, `DELIMITER` blocks included.
Credentials reach the client in a private options file, never on its command line. A plain or
gzip-compressed dump is accepted.

The target database must be new or empty: a refresh never mixes two snapshots, and never lands
on a database that already holds tables (such as a live registry).

A loaded dump is a fork of the registry it came from: once the client is done, the schema
migrations are applied and the database is marked as a fork (`registry.forks.mark_fork`): the
copied free pool is dropped, and its pool and claims keep to the fork partition of the ID space,
so it never hands out an ID that production has handed out or will.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pymysql

from idminter_pipeline.core.errors import IdMinterError, InvalidInputError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.forks import ForkStatus, mark_fork
from idminter_pipeline.registry.schema import apply_migrations

CLIENTS = ("mariadb", "mysql")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_GZIP_MAGIC = b"\x1f\x8b"


class DumpLoadError(IdMinterError):
    """The client refused the dump, or is missing."""


@dataclass(frozen=True)
class LoadReport:
    database: str
    dump: str
    tables: dict[str, int]  # table -> rows after the load
    duration_seconds: float
    fork: dict[str, Any] | None = None  # `ForkStatus.as_dict()`, once marked

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_database_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise InvalidInputError(
            f"--database {excerpt(name)}: use 1 to 64 letters, digits and underscores"
        )
    return name


def _client() -> str:
    for name in CLIENTS:
        found = shutil.which(name)
        if found:
            return found
    raise DumpLoadError(
        "no MySQL command-line client (mariadb or mysql) on PATH: apt-get install mariadb-client"
    )


def _tables(settings: DatabaseSettings) -> dict[str, int]:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW TABLES")
            names = [name for (name,) in cursor.fetchall()]
            counts = {}
            for name in names:
                cursor.execute(f"SELECT COUNT(*) FROM `{name}`")
                counts[name] = int(cursor.fetchone()[0])
        conn.rollback()
        return counts
    finally:
        conn.close()


# The server's "access denied for user to database": the account may not create or use it.
ER_DBACCESS_DENIED = 1044


def _create_empty_database(settings: DatabaseSettings, database: str) -> None:
    conn = connect(settings.with_database(""))
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s",
                (database,),
            )
            if int(cursor.fetchone()[0]):
                raise InvalidInputError(
                    f"--database {database} already holds tables: load a dump into a new or "
                    "empty database (drop the old scratch database first)"
                )
            cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS `{database}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
        conn.commit()
    except pymysql.err.OperationalError as error:
        if error.args[0] != ER_DBACCESS_DENIED:
            raise
        raise InvalidInputError(
            f"--database {database}: the server refuses {settings.username} that database "
            f"({excerpt(str(error.args[1]))}): load into one this account may create (on the "
            f"project-local server: {settings.database}_<name>), or create it empty first with "
            "an account that may"
        ) from None
    finally:
        conn.close()


def _options_file(settings: DatabaseSettings, directory: str) -> Path:
    """The client's credentials, readable by this user only (never on a command line)."""
    password = settings.password.replace("\\", "\\\\").replace('"', '\\"')
    path = Path(directory) / "client.cnf"
    path.touch(mode=0o600)
    path.write_text(
        "[client]\n"
        f"host={settings.host}\n"
        f"port={settings.port}\n"
        f"user={settings.username}\n"
        f'password="{password}"\n'
        "default-character-set=utf8mb4\n"
    )
    return path


def load_dump(
    settings: DatabaseSettings, dump: Path, database: str, *, restore: bool = False
) -> LoadReport:
    """Load `dump` into the new or empty `database` on the server `settings` reach: a fork
    (marked, its free pool dropped), or with `restore` the registry's own backup, kept as it
    was (`idminter db recover-published` then puts back what was published since)."""
    started = time.monotonic()
    database = check_database_name(database)
    if not dump.is_file():
        raise InvalidInputError(f"{dump}: no such dump file")
    if settings.secret_name:
        raise InvalidInputError(
            "load-dump passes RDS_USERNAME / RDS_PASSWORD to the client; unset RDS_SECRET_NAME "
            "(load dumps into a scratch server, not through the production secret)"
        )
    client = _client()
    _create_empty_database(settings, database)
    with dump.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    with tempfile.TemporaryDirectory() as private:
        options = _options_file(settings, private)
        # The client's errors go to a file, so a full pipe can never stall the load.
        error_log = Path(private) / "errors.log"
        with (
            gzip.open(dump, "rb") if compressed else dump.open("rb") as stream,
            error_log.open("wb") as errors_out,
        ):
            process = subprocess.Popen(
                [client, f"--defaults-extra-file={options}", "--batch", database],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors_out,
                env={k: v for k, v in os.environ.items() if k != "MYSQL_PWD"},
            )
            assert process.stdin is not None
            try:
                with process.stdin:
                    shutil.copyfileobj(stream, process.stdin, length=1 << 20)
            except BrokenPipeError:
                pass  # the client stopped reading: its error says why
            process.wait()
        errors = error_log.read_bytes()
    if process.returncode != 0:
        raise DumpLoadError(
            f"{Path(client).name} refused {dump} (exit {process.returncode}): "
            f"{excerpt(errors.decode('utf-8', 'replace').strip(), 300)}; the scratch database "
            f"{database} may hold part of it: drop it before loading again"
        )
    loaded = settings.with_database(database)
    tables = _tables(loaded)
    fork = None if restore else _mark_as_fork(loaded, dump).as_dict()
    return LoadReport(database, str(dump), tables, round(time.monotonic() - started, 3), fork)


def _mark_as_fork(settings: DatabaseSettings, dump: Path) -> ForkStatus:
    """Migrate the loaded copy and record it as a fork before anything can mint in it."""
    factory = lambda: connect(settings)  # noqa: E731
    apply_migrations(factory)
    return mark_fork(factory, f"load-dump {dump.name}")
