"""Database helpers for tests: per-session databases, cleaning, and committed-state reads."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import pymysql
import pytest

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.local_servers import mariadb as local_database
from idminter_pipeline.local_servers.engines import ServerEngine
from idminter_pipeline.local_servers.mariadb import LocalServerPaths
from idminter_pipeline.local_servers.mysql import MysqlInstall
from idminter_pipeline.registry.connection import Connection, connect

TEST_DATABASE_PREFIX = "idminter_test_"
PROJECT = Path(__file__).resolve().parent.parent
IDMINTER = Path(sys.executable).parent / "idminter"
# A server account allowed to manage users and see every session, for the few tests that need
# one (the application user has neither right on a least-privilege server).
ADMIN_USER_ENV = "IDMINTER_TEST_ADMIN_USER"
ADMIN_PASSWORD_ENV = "IDMINTER_TEST_ADMIN_PASSWORD"
# `make test-mysql` sets this to `mysql`: private servers are then MySQL ones, like the server
# the suite runs against (tools/test_mysql.py).
ENGINE_ENV = "IDMINTER_TEST_SERVER_ENGINE"


@dataclass
class _RunningTest:
    name: str | None = None


# The database-free test being set up or run, if one is (tests/conftest.py sets it).
DATABASE_FREE_TEST = _RunningTest()
# Bookkeeping tables of yoyo-migrations: kept between tests so the schema stays applied.
_KEPT_TABLES = ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")


def admin_connection(settings: DatabaseSettings) -> Connection:
    try:
        return connect(settings.with_database(""))
    except Exception as error:
        pytest.exit(
            f"The tests need a MySQL-compatible server: {error}\n"
            "Run `make test` (it starts a project-local MariaDB) or set RDS_* to a server.",
            returncode=3,
        )


def server_admin_connection(settings: DatabaseSettings) -> Connection:
    """A connection that may create users and read every session (CREATE USER, PROCESS).

    In order: the account named by IDMINTER_TEST_ADMIN_USER / _PASSWORD; the project-local
    server's administrator over its socket, when that server is the configured one; else the
    configured user itself (enough on a server where it holds every privilege).
    """
    user = os.environ.get(ADMIN_USER_ENV)
    if user:
        return pymysql.connect(
            host=settings.host,
            port=settings.port,
            user=user,
            password=os.environ.get(ADMIN_PASSWORD_ENV, ""),
            autocommit=True,
            ssl_disabled=True,  # the test server's administrator: no TLS handshake per connection
        )
    local = local_database.local_admin_connection_for(settings)
    return local if local is not None else admin_connection(settings)


def execute_once(conn: Connection, statement: str) -> None:
    """Run one statement on `conn`, then close it (a database created or dropped on an
    administrator's connection; the benchmarks use it through `benchmarks.support`)."""
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def create_database_statement(name: str, charset: str = "utf8mb4 COLLATE utf8mb4_bin") -> str:
    return f"CREATE DATABASE `{name}` CHARACTER SET {charset}"


def drop_database_statement(settings: DatabaseSettings) -> str:
    return f"DROP DATABASE IF EXISTS `{settings.database}`"


def create_database(settings: DatabaseSettings, label: str = "") -> DatabaseSettings:
    name = f"{TEST_DATABASE_PREFIX}{label}{uuid.uuid4().hex[:10]}"
    execute_once(admin_connection(settings), create_database_statement(name))
    return settings.with_database(name)


def drop_database(settings: DatabaseSettings) -> None:
    execute_once(admin_connection(settings), drop_database_statement(settings))


def clean_tables(settings: DatabaseSettings) -> None:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
            )
            tables = [name for (name,) in cursor.fetchall() if name not in _KEPT_TABLES]
            # TRUNCATE recreates a table's file: only the tables holding rows need it, and one
            # query finds them. (No test relies on an AUTO_INCREMENT counter starting again.)
            if tables:
                cursor.execute(
                    " UNION ALL ".join(
                        f"SELECT '{table}' FROM DUAL WHERE EXISTS (SELECT 1 FROM `{table}`)"
                        for table in tables
                    )
                )
                written = {name for (name,) in cursor.fetchall()}
                tables = [table for table in tables if table in written]
            # A connection a test left open inside a transaction holds a metadata lock that would
            # make TRUNCATE wait for a year: fail fast and name the culprit instead.
            cursor.execute("SET SESSION lock_wait_timeout = 20")
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            try:
                for table in tables:
                    cursor.execute(f"TRUNCATE TABLE `{table}`")
            except pymysql.err.OperationalError as error:
                cursor.execute(
                    "SELECT id, command, time, state FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
                holders = cursor.fetchall()
                pytest.fail(
                    f"cleaning {settings.database} failed ({error}): an earlier test left "
                    f"connections open inside a transaction: {holders}"
                )
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        conn.commit()
    finally:
        conn.close()


def fetch_all(settings: DatabaseSettings, sql: str, params: tuple = ()) -> list[tuple]:
    """Read with a fresh connection, so the result reflects only what was committed."""
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port nothing listens on now, for a private server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mysql_under_test() -> bool:
    """Whether the suite runs against the project-local MySQL (`make test-mysql`)."""
    return os.environ.get(ENGINE_ENV) == "mysql"


def private_server_paths(directory: Path) -> LocalServerPaths:
    """A private server's folder: MariaDB's, or under `make test-mysql` the unpacked MySQL's."""
    if not mysql_under_test():
        return LocalServerPaths(directory)
    engine = MysqlInstall.default().installed()
    if engine is None:
        pytest.fail(f"{ENGINE_ENV}=mysql but no MySQL is unpacked: run `make test-mysql`")
    return LocalServerPaths(directory, engine)


@contextmanager
def private_mariadb(directory: Path) -> Iterator[tuple[DatabaseSettings, LocalServerPaths]]:
    """A server of the caller's own in `directory` (never the shared one), stopped and its data
    removed at the end (a gigabyte each, most of it the redo log): MariaDB, or MySQL under `make
    test-mysql`. Skips the test where it cannot be started (the system's MariaDB needs root and
    the Debian package)."""
    if DATABASE_FREE_TEST.name is not None:
        raise RuntimeError(
            f"{DATABASE_FREE_TEST.name} starts a database server: mark it uses_database"
        )
    if os.geteuid() != 0 and not mysql_under_test():
        pytest.skip("starting a private mariadbd here needs root and the Debian package")
    server = DatabaseSettings(port=free_port())
    paths = private_server_paths(directory)
    if paths.engine.tree is not None:  # MySQL: start from a copy, not a new --initialize
        shutil.copytree(_initialized_mysql_data(paths.engine), paths.data_dir, symlinks=True)
        (paths.data_dir / "auto.cnf").unlink(missing_ok=True)  # a server UUID of its own
    local_database.ensure_server(server, paths, start_local=True)
    try:
        yield server, paths
    finally:
        local_database.stop_server(paths)
        shutil.rmtree(directory, ignore_errors=True)


@cache
def _initialized_mysql_data(engine: ServerEngine) -> Path:
    """A data directory `mysqld --initialize-insecure` made once in this process, for private
    MySQL servers to start from a copy (an initialize costs seconds of CPU; a run of the suite
    starts about fifteen private servers). The project-local server and the privilege tests'
    server still initialize their own."""
    base = Path(tempfile.mkdtemp(prefix="idminter-mysql-template-"))
    atexit.register(shutil.rmtree, base, True)
    template = LocalServerPaths(base, engine)
    template.tmp_dir.mkdir(parents=True)
    # Made as root when root runs the suite: each copy is handed to its server's account as
    # that server starts.
    engine.initialize(template, ["--user=root"] if os.geteuid() == 0 else [])
    return template.data_dir


def set_max_allowed_packet(paths: LocalServerPaths, size: int) -> None:
    """Set a private server's `max_allowed_packet` (new sessions see it)."""
    admin = local_database.admin_connection(paths)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SET GLOBAL max_allowed_packet = %s", (size,))
    finally:
        admin.close()


@contextmanager
def migrated_database(server: DatabaseSettings, label: str) -> Iterator[DatabaseSettings]:
    """A migrated registry database of its own on `server`, dropped at the end."""
    from idminter_pipeline.registry.schema import apply_migrations  # noqa: PLC0415

    settings = create_database(server, label)
    try:
        apply_migrations(lambda: connect(settings))
        yield settings
    finally:
        drop_database(settings)


def cli_env(settings: DatabaseSettings, **extra: str) -> dict[str, str]:
    """The environment of an `idminter` subprocess on `settings`' registry (plus `extra`): this
    source tree, not whatever checkout the venv has installed (a worktree's tests may run with
    another checkout's venv), and the credentials of `settings`, never a named secret."""
    env = {
        **os.environ,
        **settings.as_environment(),
        **extra,
        "PYTHONPATH": os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("RDS_SECRET_NAME", None)
    return env


def run_idminter(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess:
    """`idminter ARGS...` in the project folder, its output captured."""
    return subprocess.run(
        [str(IDMINTER), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=600,
        check=False,
    )


@contextmanager
def registry_on_private_server(
    server: DatabaseSettings, paths: LocalServerPaths, label: str, free_ids: int = 0
) -> Iterator[DatabaseSettings]:
    """A migrated registry database on a private server, `free_ids` in its pool; at the end the
    server is started again (a test may have stopped it) and the database dropped."""
    from idminter_pipeline.registry.pool import top_up  # noqa: PLC0415
    from idminter_pipeline.registry.schema import apply_migrations  # noqa: PLC0415

    settings = create_database(server, label)
    try:
        apply_migrations(lambda: connect(settings))
        if free_ids:
            top_up(lambda: connect(settings), free_ids)
        yield settings
    finally:
        local_database.ensure_server(server, paths, start_local=True)
        drop_database(settings)


# InnoDB refreshes what information_schema.innodb_trx shows only when nobody, on any session,
# has read it for 0.1 s: parallel workers polling it keep it frozen at an old picture.
INNODB_TRX_IDLE_SECONDS = 0.12
_INNODB_TRX_READERS_LOCK = "idminter_tests.innodb_trx"


def read_innodb_trx(conn: Connection, query: str, params: tuple) -> list[tuple]:
    """Rows of `query` over information_schema.innodb_trx as they are now: every test reader
    takes one server-wide lock, then lets the table sit unread long enough to be refreshed."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 60)", (_INNODB_TRX_READERS_LOCK,))
        try:
            time.sleep(INNODB_TRX_IDLE_SECONDS)
            cursor.execute(query, params)
            rows = list(cursor.fetchall())
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (_INNODB_TRX_READERS_LOCK,))
    conn.rollback()
    return rows


def wait_until_waiting_for_a_lock(
    settings: DatabaseSettings, thread_id: int, *, timeout: float = 30.0
) -> None:
    """Block until session `thread_id` waits for a row lock: a state, not a duration."""
    deadline = time.monotonic() + timeout
    # Reading another session's transaction needs PROCESS, which the application user lacks.
    conn = server_admin_connection(settings)
    try:
        while time.monotonic() < deadline:
            waiting = read_innodb_trx(
                conn,
                "SELECT 1 FROM information_schema.innodb_trx "
                "WHERE trx_mysql_thread_id = %s AND trx_state = 'LOCK WAIT'",
                (thread_id,),
            )
            if waiting:
                return
    finally:
        conn.close()
    raise AssertionError(f"session {thread_id} never waited for a row lock")


def secret_settings(settings: DatabaseSettings, secret_name: str) -> DatabaseSettings:
    """`settings`' server and database, with the credentials read from the Secrets Manager
    secret `secret_name` (eu-west-1) on every connect: its own username and password blank."""
    return replace(
        settings, username="", password="", secret_name=secret_name, aws_region="eu-west-1"
    )


def registry_factory(settings: DatabaseSettings) -> Callable[[], Connection]:
    """A connection factory for `settings`, as the library's entry points take one."""
    return lambda: connect(settings)


def starmap_in_processes(function: Callable[..., Any], arguments: list[tuple]) -> list[Any]:
    """`function` called once per argument tuple, all at once, each in a fresh process of its own
    (spawned, so none inherits a connection); their results in order. The pool is closed and
    joined, never terminated: terminating sends SIGTERM, which a process started with SIGTERM
    ignored (as some job runners start theirs) never acts on, and the test would hang."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(arguments)) as pool:
        results = pool.starmap(function, arguments)
        pool.close()
        pool.join()
    return results


@contextmanager
def clients_running(
    settings: DatabaseSettings, *clients: Callable[[Connection], None]
) -> Iterator[list[Exception]]:
    """Each of `clients` called over and over while the block runs, each on a connection of its
    own in a thread of its own; they stop when the block ends. Yields the errors they raised (a
    client stops at its first), for the test to assert there were none."""
    stop = threading.Event()
    errors: list[Exception] = []

    def keep_calling(client: Callable[[Connection], None]) -> None:
        conn = connect(settings)
        try:
            while not stop.is_set():
                client(conn)
        except Exception as error:  # surfaced by the test's assertion on the errors
            errors.append(error)
        finally:
            conn.close()

    threads = [threading.Thread(target=keep_calling, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def as_another_client(settings: DatabaseSettings, *statements: str | tuple) -> None:
    """Run statements (text, or text and parameters) on a connection of their own, committing
    each: another client's writes."""
    conn = connect(settings)
    try:
        conn.autocommit(True)
        with conn.cursor() as cursor:
            for statement in statements:
                sql, params = statement if isinstance(statement, tuple) else (statement, None)
                cursor.execute(sql, params)
    finally:
        conn.close()


def run_statements(settings: DatabaseSettings, *statements: str | tuple) -> None:
    """Run each statement (text, or text and parameters) on one connection, then commit."""
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                if isinstance(statement, tuple):
                    cursor.execute(*statement)
                else:
                    cursor.execute(statement)
        conn.commit()
    finally:
        conn.close()


def write_past_the_guards(settings: DatabaseSettings, *statements: str) -> None:
    """Run `statements` with the registry's invariant guards dropped for the moment, then put
    them back: what a registry holds after a writer the guards did not stop (a restore, history
    from before them), for tests of what the reconciliation then finds."""
    from idminter_pipeline.registry.invariants import (  # noqa: PLC0415
        GUARD_NAMES,
        MAPPING_GUARD_NAMES,
        drop_guards,
        install_mapping_guards,
        install_pool_guards,
        trigger_names,
    )

    conn = connect(settings)
    try:
        # A legacy 1:1 `identifiers` has no mapping guards, and must not get them here.
        guarded_mappings = set(MAPPING_GUARD_NAMES) <= trigger_names(conn, "identifiers")
        drop_guards(conn, GUARD_NAMES)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
            conn.commit()
        finally:
            install_pool_guards(conn)
            if guarded_mappings:
                install_mapping_guards(conn)
    finally:
        conn.close()
