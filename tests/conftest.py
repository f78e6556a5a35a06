"""Shared fixtures: a real MySQL-compatible server, a database per test session, clean tables.

The server is whatever `DatabaseSettings.from_env()` reaches: this checkout's MariaDB that
`make test` starts, or the server the RDS_* variables name. Tests never mock the database.

`make test` runs the suite in parallel workers (pytest-xdist, `--dist loadgroup`): each worker has
its own session database, and whatever else a test creates (databases, users, servers, ports,
files) is named or placed for that test alone. A module whose tests share a fixture of module or
class scope (a private server, say) runs on one worker, so that fixture is built once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from db_helpers import (
    DATABASE_FREE_TEST,
    admin_connection,
    clean_tables,
    create_database,
    drop_database,
    private_mariadb,
)
from legacy_helpers import scratch_database
from moto.server import ThreadedMotoServer

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.local_servers import mariadb as local_database
from idminter_pipeline.local_servers.mariadb import LocalServerPaths
from idminter_pipeline.registry.connection import Connection, connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.schema import apply_migrations
from idminter_pipeline.works.stores import SqliteWorksStore

_SHARED_SCOPES = {"module", "class", "package"}

# Every fixture through which a test reaches a database server: `server_settings` is under all
# the session's databases; a private server is a server of its own.
_DATABASE_FIXTURES = {"server_settings", "private_server"}
# Where a database-free test's registry settings point: nothing listens there, so a test that
# reaches a database without saying so fails at once, on every server.
_NO_SERVER_PORT = "9"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reaches_a_server = _DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if not reaches_a_server and not item.get_closest_marker("uses_database"):
            item.add_marker(pytest.mark.database_free)
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None or item.get_closest_marker("xdist_group"):
            continue
        if any(
            definitions[-1].scope in _SHARED_SCOPES
            for definitions in fixtures.name2fixturedefs.values()
        ):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    _start_longest_first(items)


# After each slow test (most of them wait: on a daemon, a crash, an outage), about this many
# other tests, so that the first minutes keep the cores busy rather than every worker waiting.
_TESTS_BETWEEN_SLOW_TESTS = 25


def _start_longest_first(items: list[pytest.Item]) -> None:
    """The slow tests early, longest first, each followed by some other work (groups by size,
    then the rest): the parallel run ends on many short tests spread over the workers, not on
    one long test started late, and starts with the cores busy rather than every worker waiting.
    (The Makefile passes --no-loadscope-reorder, so xdist keeps this order.)"""

    def group(item: pytest.Item) -> str:
        marker = item.get_closest_marker("xdist_group")
        return marker.args[0] if marker and marker.args else item.nodeid

    def expected_seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return marker.kwargs.get("seconds", 10) if marker else 0

    sizes = Counter(group(item) for item in items)
    units: dict[str, list[pytest.Item]] = {}
    for item in sorted(items, key=lambda item: (-expected_seconds(item), -sizes[group(item)])):
        units.setdefault(group(item), []).append(item)
    slow = [unit for unit in units.values() if any(map(expected_seconds, unit))]
    others = iter([unit for unit in units.values() if not any(map(expected_seconds, unit))])
    items.clear()
    for unit in slow:
        items.extend(unit)
        between = 0
        while between < _TESTS_BETWEEN_SLOW_TESTS and (other := next(others, None)):
            items.extend(other)
            between += len(other)
    for other in others:
        items.extend(other)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    """While a database-free test runs (its fixtures included), starting a server fails."""
    DATABASE_FREE_TEST.name = item.nodeid if item.get_closest_marker("database_free") else None
    try:
        return (yield)
    finally:
        DATABASE_FREE_TEST.name = None


@pytest.fixture(autouse=True)
def _database_free_tests_reach_no_server(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database-free test sends no statement to any server, so `make test-mysql` leaves it to
    `make test`; its registry settings point where nothing listens, so one that does reach a
    database (through the environment, a CLI process) fails here instead of being skipped there.
    A test that reaches one other than through a fixture says so: `@pytest.mark.uses_database`."""
    if request.node.get_closest_marker("database_free") is None:
        return
    monkeypatch.setenv("RDS_PRIMARY_HOST", "127.0.0.1")
    monkeypatch.setenv("RDS_PORT", _NO_SERVER_PORT)


_FLUSH_KEY = pytest.StashKey[int]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """While the suite runs on this checkout's own server, its commits are synced to disk about
    once a second (a crash of the machine, not of the server, could lose the last second); the
    setting is restored when the suite ends. The suite commits thousands of times, and syncing
    each cost it a tenth of its time. Done by the controlling process alone, and never on a
    server configured from outside."""
    if hasattr(session.config, "workerinput"):
        return
    admin = local_database.local_admin_connection_for(DatabaseSettings.from_env())
    if admin is None:
        return
    with closing(admin), admin.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit")
        ((session.config.stash[_FLUSH_KEY],),) = cursor.fetchall()
        cursor.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 2")


def pytest_sessionfinish(session: pytest.Session) -> None:
    previous = session.config.stash.get(_FLUSH_KEY, None)
    if previous is None:
        return
    admin = local_database.local_admin_connection_for(DatabaseSettings.from_env())
    if admin is not None:
        with closing(admin), admin.cursor() as cursor:
            cursor.execute("SET GLOBAL innodb_flush_log_at_trx_commit = %s", (int(previous),))


@pytest.fixture(scope="session")
def server_settings() -> DatabaseSettings:
    settings = DatabaseSettings.from_env()
    admin_connection(settings).close()
    return settings


@pytest.fixture(scope="session")
def session_database(server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """One migrated database for the whole session (one per xdist worker)."""
    settings = create_database(server_settings, os.environ.get("PYTEST_XDIST_WORKER", ""))
    apply_migrations(lambda: connect(settings))
    yield settings
    drop_database(settings)


@pytest.fixture
def registry(session_database: DatabaseSettings) -> DatabaseSettings:
    """Settings for the session's migrated database, with every table emptied first."""
    clean_tables(session_database)
    return session_database


@pytest.fixture
def conn(registry: DatabaseSettings) -> Iterator[Connection]:
    connection = connect(registry)
    yield connection
    connection.close()


@pytest.fixture
def connect_registry(registry: DatabaseSettings) -> Callable[[], Connection]:
    """A connection factory for the clean registry (close what you open)."""
    return lambda: connect(registry)


@pytest.fixture
def minter(connect_registry: Callable[[], Connection]) -> Iterator[Minter]:
    """A Minter on the clean registry, closed after the test."""
    with Minter(connect_registry) as minter:
        yield minter


@pytest.fixture
def empty_database(server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A database of its own with no schema, for tests that create, migrate or drop tables."""
    settings = create_database(server_settings, "empty_")
    yield settings
    drop_database(settings)


@pytest.fixture
def registry_env(registry: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> DatabaseSettings:
    """Point the RDS_* environment (and so the CLI) at the clean test registry."""
    for name, value in registry.as_environment().items():
        monkeypatch.setenv(name, value)
    return registry


AWS_TEST_REGION = "eu-west-1"


@pytest.fixture
def works_store_env(
    registry_env: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The CLI's environment for the test registry and an embedded works store of the test's own
    (its path returned, the file not yet created)."""
    path = tmp_path / "works.sqlite3"
    monkeypatch.setenv("WORKS_STORE_PATH", str(path))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteWorksStore]:
    """An empty embedded works store of the test's own."""
    with SqliteWorksStore(tmp_path / "works.sqlite3") as works_store:
        yield works_store


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """A real moto server on loopback: AWS calls go over HTTP, as they would in production."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point boto3 at the moto server with throwaway credentials; fresh Secrets Manager client."""
    from idminter_pipeline.registry import connection as connection_module  # noqa: PLC0415

    for name, value in {
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": AWS_TEST_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    connection_module._secrets_client.cache_clear()
    yield aws_endpoint
    connection_module._secrets_client.cache_clear()


@pytest.fixture
def legacy_database(server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A fresh database of its own, for a legacy registry."""
    yield from scratch_database(server_settings)


@pytest.fixture(scope="module")
def private_server(tmp_path_factory) -> Iterator[tuple[DatabaseSettings, LocalServerPaths]]:
    """A MariaDB of the test module's own (never the shared one), for tests that stop or kill
    it; stopped at the end."""
    with private_mariadb(tmp_path_factory.mktemp("private-mariadb")) as server:
        yield server
