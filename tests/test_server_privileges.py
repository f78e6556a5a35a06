"""The project-local server's bootstrap and the documented grants, on a private server.

A MariaDB of this module's own (never the shared one, whose users and grants stay as they are),
bootstrapped by `local_database`:

- the server runs as the `mysql` system user wherever that user can enter its folders (as root,
  saying so, where it cannot), with `secure_file_priv` on a private folder;
- `id_minter` holds `LOCAL_PRIVILEGES` on its own databases (the registry, its scratch copies
  `identifiers_*`, the tests' and benchmarks') and nothing else (no `*.*`, no GRANT OPTION),
  and a bootstrap over a user an older bootstrap made all-powerful takes that back;
- names that are not safe in SQL are refused, naming them, before anything runs: an injection
  payload runs no extra statement;
- the compose init grants `id_minter` exactly what the bootstrap does;
- the production accounts of `deploy/registry-grants.sql` can do their jobs (migrations and the
  legacy migration; minting, the pool, reconciliation) and nothing beyond them.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pymysql
import pytest
from db_helpers import free_port, mysql_under_test, private_server_paths
from legacy_helpers import SPECIAL_ROWS, create_legacy_table
from works_helpers import work

from idminter_pipeline.core.errors import (
    InvalidSettingError,
    LegacyMigrationError,
    RegistryUnavailableError,
)
from idminter_pipeline.core.settings import DatabaseSettings, project_root
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.local_servers.mariadb import (
    LOCAL_PRIVILEGES,
    LocalServerPaths,
    admin_connection,
    bootstrap_server,
    ensure_server,
    process_user,
    stop_server,
)
from idminter_pipeline.registry import legacy_migration, reconciliation
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.invariants import (
    RULE_MAPPING_IMMUTABLE,
    RULE_MAPPING_UNDELETABLE,
    RULE_PUBLISHED_ID_KEPT,
    MappingChangeRefusedError,
    refused_rule,
)
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest
from idminter_pipeline.registry.pool import pool_health, top_up
from idminter_pipeline.registry.schema import apply_migrations
from idminter_pipeline.registry.summary import registry_summary
from idminter_pipeline.works.checkpoints import RunCheckpoints
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.stores import FullScope, SqliteWorksStore

ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142
DENIED = {ER_DBACCESS_DENIED, ER_ACCESS_DENIED, ER_SPECIFIC_ACCESS_DENIED, ER_TABLEACCESS_DENIED}

INJECTION = "identifiers`; CREATE DATABASE idminter_pwned; -- "


@pytest.fixture(scope="module")
def private_server() -> Iterator[tuple[DatabaseSettings, LocalServerPaths]]:
    """A private server in a folder the `mysql` user can reach (pytest's tmp_path is root-only):
    MariaDB, or MySQL under `make test-mysql`."""
    mariadb = shutil.which("mariadbd") is not None or Path("/usr/sbin/mariadbd").exists()
    if not mariadb and not mysql_under_test():
        pytest.skip("needs Debian's mariadb-server")
    if os.geteuid() != 0:
        pytest.skip("starting the server as the mysql system user needs root")
    base = Path(tempfile.mkdtemp(prefix="idminter-privileges-"))
    base.chmod(0o755)  # the mysql user must reach the server's folder (mkdtemp makes it 0700)
    paths = private_server_paths(base / "server")
    settings = DatabaseSettings(port=free_port())
    try:
        ensure_server(settings, paths, start_local=True)
        yield settings, paths
    finally:
        stop_server(paths)
        shutil.rmtree(base, ignore_errors=True)


def _admin(paths: LocalServerPaths) -> pymysql.connections.Connection:
    return admin_connection(paths)


def _rows(conn: pymysql.connections.Connection, sql: str, params: tuple = ()) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _grants(paths: LocalServerPaths, user: str, host: str) -> list[str]:
    with closing(_admin(paths)) as admin:
        return [row[0] for row in _rows(admin, "SHOW GRANTS FOR %s@%s", (user, host))]


def _databases(paths: LocalServerPaths) -> set[str]:
    with closing(_admin(paths)) as admin:
        return {name for (name,) in _rows(admin, "SHOW DATABASES")}


def _denied(settings: DatabaseSettings, sql: str) -> int:
    """The error code the server answers `sql` with, as the settings' user."""
    with closing(connect(settings)) as conn, conn.cursor() as cursor:
        with pytest.raises(pymysql.err.MySQLError) as raised:
            cursor.execute(sql)
        return raised.value.args[0]


def _normalized_privileges(grant: str) -> set[str]:
    listed = re.match(r"GRANT (.+) ON ", grant)
    assert listed is not None, grant
    return {p.strip() for p in listed[1].split(",")}


def _database_grants(grants: list[str]) -> dict[str, set[str]]:
    """{database pattern: privileges} of the `GRANT ... ON `db`.* TO ...` lines."""
    found = {}
    for grant in grants:
        match = re.match(r"GRANT .+ ON `(.+)`\.\* TO ", grant)
        if match:
            found[match[1]] = _normalized_privileges(grant)
    return found


EXPECTED_DATABASES = {"identifiers", r"identifiers\_%", r"idminter\_test\_%", r"idminter\_bench\_%"}


# --- the server process ---------------------------------------------------------------------


def _enterable_by(account: pwd.struct_passwd, folder: Path) -> bool:
    """Whether `account` may pass through `folder` and every folder above it, by their modes."""
    groups = {g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem} | {account.pw_gid}
    for part in (folder, *folder.parents):
        status = part.stat()
        if status.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif status.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not status.st_mode & bit:
            return False
    return True


def test_the_server_drops_to_the_mysql_user_where_it_can_with_a_private_file_folder(
    private_server,
):
    settings, paths = private_server
    account = pwd.getpwnam("mysql")
    # This module's server folder is open to `mysql`. Under `make test-mysql` the server also
    # reads the MySQL unpacked in the checkout, which a checkout in a private (0700) folder
    # closes to it: the server then runs as root, and says so.
    tree = paths.engine.tree
    expected = "mysql" if tree is None or _enterable_by(account, tree) else "root"
    pid = int(paths.pid_file.read_text())
    assert process_user(pid) == expected
    assert paths.data_dir.stat().st_uid == pwd.getpwnam(expected).pw_uid
    with closing(connect(settings.with_database(""))) as conn:
        (folder,) = _rows(conn, "SELECT @@secure_file_priv")[0]
    assert Path(folder) == paths.files_dir
    assert paths.files_dir.stat().st_mode & 0o077 == 0
    # id_minter has no FILE privilege: it cannot write files anywhere, even there.
    target = paths.files_dir / "leak.txt"
    assert _denied(settings, f"SELECT 1 INTO OUTFILE '{target}'") in DENIED
    assert not target.exists()
    report = ensure_server(settings, paths, start_local=True)
    assert report.system_user == expected
    if expected == "mysql":
        assert f"  {paths.engine.name} runs as system user 'mysql'" in report.lines()
    else:
        assert any(f"{paths.engine.name} runs as root (" in line for line in report.lines())


# --- id_minter's grants ----------------------------------------------------------------------


def test_id_minter_holds_only_its_own_databases(private_server):
    settings, paths = private_server
    for host in ("localhost", "127.0.0.1"):
        grants = _grants(paths, "id_minter", host)
        assert not any("GRANT OPTION" in grant for grant in grants), grants
        assert not any("ALL PRIVILEGES" in grant for grant in grants), grants
        on_everything = [g for g in grants if " ON *.* " in g]
        assert len(on_everything) == 1 and on_everything[0].startswith("GRANT USAGE ON *.*")
        expected = {p.strip() for p in LOCAL_PRIVILEGES.split(",")}
        assert _database_grants(grants) == dict.fromkeys(EXPECTED_DATABASES, expected)

    # What the grants allow, and what they do not.
    # A test's database, and a copy of the registry (the runbooks load dumps into them).
    for scratch in ("idminter_test_privileges_probe", "identifiers_privileges_probe"):
        with closing(connect(settings.with_database(""))) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{scratch}`")
            cursor.execute(f"DROP DATABASE `{scratch}`")
    assert _denied(settings, "CREATE DATABASE idminter_elsewhere") in DENIED
    assert _denied(settings, "SELECT * FROM mysql.user") in DENIED
    assert _denied(settings, "CREATE USER 'idminter_intruder'@'%'") in DENIED
    assert _denied(settings, "SELECT * FROM information_schema.innodb_trx") in DENIED
    assert "idminter_elsewhere" not in _databases(paths)


def _beyond_usage_on_everything(grants: list[str]) -> list[str]:
    return [g for g in grants if " ON *.* " in g and not g.startswith("GRANT USAGE ON *.*")]


def test_bootstrap_takes_back_what_an_older_bootstrap_granted(private_server):
    settings, paths = private_server
    with closing(_admin(paths)) as admin, admin.cursor() as cursor:
        for host in ("localhost", "127.0.0.1"):
            cursor.execute(
                "GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", ("id_minter", host)
            )
    # MariaDB shows `ALL PRIVILEGES ON *.*`, MySQL lists each privilege (and its dynamic ones).
    assert _beyond_usage_on_everything(_grants(paths, "id_minter", "127.0.0.1"))
    bootstrap_server(paths, settings)
    grants = _grants(paths, "id_minter", "127.0.0.1")
    assert not any("ALL PRIVILEGES" in g or "GRANT OPTION" in g for g in grants), grants
    assert not _beyond_usage_on_everything(grants), grants
    assert set(_database_grants(grants)) == EXPECTED_DATABASES


def test_a_client_connecting_during_a_repeated_bootstrap_keeps_its_privileges(private_server):
    # `make db` and a restarted server bootstrap again while clients reconnect: no moment in
    # between may leave the user without its grants (that showed as a 1044 to a client).
    settings, paths = private_server
    stop = threading.Event()
    refused: list[str] = []
    queries = 0

    def keep_connecting() -> None:
        nonlocal queries
        while not stop.is_set():
            try:
                with closing(connect(settings)) as conn, conn.cursor() as cursor:
                    cursor.execute("SELECT COUNT(*) FROM information_schema.tables")
                    queries += 1
            except RegistryUnavailableError as error:
                refused.append(str(error))

    clients = [threading.Thread(target=keep_connecting) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        for _ in range(40):
            bootstrap_server(paths, settings)
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert queries > 0
    assert refused == []


# --- names that are not safe in SQL ------------------------------------------------------------


def test_the_injection_payload_is_refused_and_runs_nothing(private_server):
    settings, paths = private_server
    before = _databases(paths)
    with pytest.raises(InvalidSettingError) as raised:
        bootstrap_server(paths, settings.with_database(INJECTION))
    assert raised.value.name == "IDENTIFIERS_DATABASE"
    assert "CREATE DATABASE idminter_pwned" in str(raised.value)
    assert _databases(paths) == before
    assert "idminter_pwned" not in _databases(paths)


def test_unsafe_names_stop_ensure_server_before_anything_starts(tmp_path):
    paths = LocalServerPaths(tmp_path / "mariadb")
    settings = DatabaseSettings(port=free_port(), database=INJECTION)
    with pytest.raises(InvalidSettingError) as raised:
        ensure_server(settings, paths, start_local=True)
    assert INJECTION[:30] in str(raised.value)
    assert not paths.base.exists()  # no data directory, no server


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("database", "", "IDENTIFIERS_DATABASE"),
        ("database", "a" * 65, "IDENTIFIERS_DATABASE"),
        ("database", "ids-with-dash", "IDENTIFIERS_DATABASE"),
        ("database", "ids\u00e9", "IDENTIFIERS_DATABASE"),
        ("username", "id_minter'@'%", "RDS_USERNAME"),
        ("password", "pw\nwith newline", "RDS_PASSWORD"),
        ("password", "", "RDS_PASSWORD"),
    ],
)
def test_bootstrap_refuses_unsafe_settings_naming_them(private_server, field, value, variable):
    settings, paths = private_server
    unsafe = DatabaseSettings(**{**settings.__dict__, field: value})
    with pytest.raises(InvalidSettingError) as raised:
        bootstrap_server(paths, unsafe)
    assert raised.value.name == variable
    if field == "password":
        assert value not in str(raised.value) or not value  # never echoed
    else:
        assert repr(value)[:20] in str(raised.value)


# --- the compose init and the production accounts ------------------------------------------------


def _statements(path: Path) -> list[str]:
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def _run_as_admin(paths: LocalServerPaths, statements: list[str]) -> None:
    with closing(_admin(paths)) as admin, admin.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_the_compose_init_grants_what_the_bootstrap_grants(private_server):
    _, paths = private_server
    user = "id_minter"
    # What the MySQL image does with MYSQL_USER before it runs the init folder.
    _run_as_admin(
        paths,
        [
            f"CREATE USER '{user}'@'%' IDENTIFIED BY 'compose-test'",
            f"GRANT ALL PRIVILEGES ON `identifiers`.* TO '{user}'@'%'",
        ],
    )
    try:
        init = project_root() / "deploy" / "mysql-init" / "01-id-minter-grants.sql"
        _run_as_admin(paths, _statements(init))
        compose = _database_grants(_grants(paths, user, "%"))
        bootstrap = _database_grants(_grants(paths, user, "127.0.0.1"))
        assert compose == bootstrap
        assert set(compose) == EXPECTED_DATABASES
    finally:
        _run_as_admin(paths, [f"DROP USER '{user}'@'%'"])


PRODUCTION_GRANTS = project_root() / "deploy" / "registry-grants.sql"
RUNTIME, MIGRATION = "idminter_runtime", "idminter_migration"


def _production_statements(database: str, account: str) -> list[str]:
    """The file's statements for one account, on `database`, with test passwords."""
    statements = [
        statement.replace("`identifiers`.", f"`{database}`.")
        .replace("replace-with-the-migration-secret", "migration-test-pw")
        .replace("replace-with-the-runtime-secret", "runtime-test-pw")
        for statement in _statements(PRODUCTION_GRANTS)
    ]
    return [s for s in statements if f"'{account}'@" in s]


def _account(settings: DatabaseSettings, database: str, user: str) -> DatabaseSettings:
    password = "runtime-test-pw" if user == RUNTIME else "migration-test-pw"
    return DatabaseSettings(
        host=settings.host, port=settings.port, username=user, password=password, database=database
    )


@pytest.fixture
def production_accounts(private_server) -> Iterator[tuple[DatabaseSettings, DatabaseSettings]]:
    settings, paths = private_server
    database = "idminter_test_production_grants"
    _run_as_admin(paths, [f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"])
    _run_as_admin(paths, _production_statements(database, MIGRATION))
    try:
        yield _account(settings, database, MIGRATION), _account(settings, database, RUNTIME)
    finally:
        _run_as_admin(
            paths,
            [
                f"DROP DATABASE IF EXISTS `{database}`",
                f"DROP USER IF EXISTS '{MIGRATION}'@'%'",
                f"DROP USER IF EXISTS '{RUNTIME}'@'%'",
            ],
        )


def test_the_production_accounts_do_their_jobs_and_no_more(
    private_server, production_accounts, tmp_path
):
    _, paths = private_server
    migration, runtime = production_accounts
    # The migration account applies the schema; the runtime grants need its tables.
    assert apply_migrations(lambda: connect(migration))
    _run_as_admin(paths, _production_statements(migration.database, RUNTIME))

    factory = lambda: connect(runtime)  # noqa: E731
    report = top_up(factory, 50, batch_size=20)
    assert report.free_after >= 50
    predecessor = SourceIdentifier.parse("Work[sierra-system-number/b1]")
    successor = SourceIdentifier.parse("Work[folio-instance/in1]")
    with Minter(factory) as minter:
        minter.mint_ids([MintRequest(predecessor)])
        inherited = minter.mint_ids([MintRequest(successor, predecessor)], job_id="grants")
        assert inherited[successor].outcome is MintOutcome.INHERITED
        assert minter.lookup_ids([predecessor, successor]) == {
            predecessor: inherited[successor].canonical_id,
            successor: inherited[successor].canonical_id,
        }
    health = pool_health(factory)
    assert health.assigned == 1
    checked = reconciliation.reconcile(factory, repair=True)
    assert {f.status for f in checked.findings} <= {"ok", "found"}, checked.as_dict()
    with closing(connect(runtime)) as conn:
        assert registry_summary(conn).mappings == 2

    # A resumable full works run records its checkpoints with the runtime account too.
    with (
        SqliteWorksStore(tmp_path / "works.sqlite3") as store,
        Minter(factory) as minter,
        RunCheckpoints(factory) as checkpoints,
    ):
        store.put_source([work("sierra-system-number", f"w{n}") for n in range(3)])
        summary = WorksPipeline(store, minter, batch_size=2).run(
            FullScope(), job_id="grants-full", checkpoints=checkpoints
        )
    assert (summary.works_written, summary.failed, summary.batches) == (3, 0, 2)

    # Nothing beyond rows: no DDL, no deleting mappings, no other database.
    assert _denied(runtime, "CREATE TABLE runtime_probe (x INT)") in DENIED
    assert _denied(runtime, "DROP TABLE identifiers") in DENIED
    assert _denied(runtime, "ALTER TABLE canonical_ids ADD COLUMN x INT") in DENIED
    assert _denied(runtime, "DELETE FROM identifiers") in DENIED
    assert _denied(runtime, "DELETE FROM _yoyo_migration") in DENIED
    assert _denied(runtime, "DELETE FROM retired_canonical_ids") in DENIED
    assert _denied(runtime, "CREATE DATABASE idminter_runtime_probe") in DENIED
    assert _denied(migration, "CREATE DATABASE idminter_migration_probe") in DENIED
    assert _denied(migration, "SELECT * FROM mysql.user") in DENIED


def test_the_migration_account_migrates_a_legacy_registry(private_server, production_accounts):
    migration, _ = production_accounts
    create_legacy_table(migration, SPECIAL_ROWS)
    apply_migrations(lambda: connect(migration))
    factory = lambda: connect(migration)  # noqa: E731
    report = legacy_migration.migrate(factory, batch_size=2)
    assert report.swapped, report.as_dict()
    assert report.rows_copied == len(SPECIAL_ROWS)
    rolled_back = legacy_migration.rollback(factory)
    assert "rolled back" in rolled_back.status
    assert legacy_migration.migrate(factory).swapped
    assert legacy_migration.finalize(factory).status.startswith("finalized")


def test_with_the_binary_log_on_the_triggers_need_trusted_creators(
    private_server, production_accounts
):
    """MySQL logs binary by default: without SUPER (which Aurora gives nobody), CREATE TRIGGER
    then needs log_bin_trust_function_creators = 1, as deploy/registry-grants.sql says. Without
    it the migration stops with one error naming the fix, and resumes once it is set."""
    _, paths = private_server
    migration, _ = production_accounts
    with closing(_admin(paths)) as admin:
        ((log_bin, trusted),) = _rows(
            admin, "SELECT @@log_bin, @@global.log_bin_trust_function_creators"
        )
    if not log_bin:
        pytest.skip("the binary log is off on this server (MariaDB's default)")
    create_legacy_table(migration, SPECIAL_ROWS)
    apply_migrations(lambda: connect(migration))
    factory = lambda: connect(migration)  # noqa: E731
    _run_as_admin(paths, ["SET GLOBAL log_bin_trust_function_creators = 0"])
    try:
        with pytest.raises(LegacyMigrationError, match="log_bin_trust_function_creators is 0"):
            legacy_migration.migrate(factory, batch_size=2)
    finally:
        _run_as_admin(paths, [f"SET GLOBAL log_bin_trust_function_creators = {int(trusted)}"])
    _run_as_admin(paths, ["SET GLOBAL log_bin_trust_function_creators = 1"])
    try:
        report = legacy_migration.migrate(factory, batch_size=2)
    finally:
        _run_as_admin(paths, [f"SET GLOBAL log_bin_trust_function_creators = {int(trusted)}"])
    assert report.swapped, report.as_dict()
    assert report.rows_copied == len(SPECIAL_ROWS)


def _rule(settings: DatabaseSettings, sql: str) -> str | int:
    """The guard's rule refusing `sql` as the settings' user, or the error code of another
    refusal (a missing grant)."""
    with closing(connect(settings)) as conn, conn.cursor() as cursor:
        with pytest.raises(pymysql.err.MySQLError) as raised:
            cursor.execute(sql)
        conn.rollback()
        return refused_rule(raised.value) or raised.value.args[0]


def test_no_account_moves_a_published_id_and_only_the_migration_account_retires_one(
    private_server, production_accounts
):
    _, paths = private_server
    migration, runtime = production_accounts
    apply_migrations(lambda: connect(migration))
    _run_as_admin(paths, _production_statements(migration.database, RUNTIME))
    factory = lambda: connect(runtime)  # noqa: E731
    top_up(factory, 20, batch_size=20)
    b1, b2 = SourceIdentifier.parse("Work[s/b1]"), SourceIdentifier.parse("Work[s/b2]")
    with Minter(factory) as minter:
        minted = minter.mint_ids([MintRequest(b1), MintRequest(b2)])
    b1_id = minted[b1].canonical_id
    # Each statement: what refuses it to the runtime account, and to the migration account (a
    # grant it lacks: DENIED; else the guard's rule). The migration account may take a permit.
    grant = "a missing grant"
    attempts = {
        f"UPDATE identifiers SET SourceId = 'b9' WHERE CanonicalId = '{b1_id}'": (
            RULE_MAPPING_IMMUTABLE,
            RULE_MAPPING_IMMUTABLE,
        ),
        f"UPDATE identifiers SET CanonicalId = '{minted[b2].canonical_id}' "
        f"WHERE CanonicalId = '{b1_id}'": (RULE_MAPPING_IMMUTABLE, RULE_MAPPING_IMMUTABLE),
        f"DELETE FROM identifiers WHERE CanonicalId = '{b1_id}'": (
            grant,
            RULE_MAPPING_UNDELETABLE,
        ),
        f"UPDATE canonical_ids SET Status = 'free' WHERE CanonicalId = '{b1_id}'": (
            RULE_PUBLISHED_ID_KEPT,
            RULE_PUBLISHED_ID_KEPT,
        ),
        f"DELETE FROM canonical_ids WHERE CanonicalId = '{b1_id}'": (
            grant,
            RULE_PUBLISHED_ID_KEPT,
        ),
        "INSERT INTO mapping_change_permits (ConnectionId, Account, Reason) "
        "VALUES (CONNECTION_ID(), USER(), 'x')": (grant, None),
    }
    for sql, (as_runtime, as_migration) in attempts.items():
        refused = _rule(runtime, sql)
        assert refused in DENIED if as_runtime == grant else refused == as_runtime, (sql, refused)
        if as_migration is not None:
            assert _rule(migration, sql) == as_migration, sql
    with pytest.raises(MappingChangeRefusedError):
        reconciliation.retire_mapping(factory, b1, "the runtime account tries")

    retired = reconciliation.retire_mapping(lambda: connect(migration), b1, "withdrawn")
    assert retired.canonical_id == b1_id
    with closing(connect(runtime)) as conn:
        changes = _rows(conn, "SELECT Action, CanonicalId, Account FROM mapping_changes")
        assert registry_summary(conn).mappings == 1
    assert [(action, canonical) for action, canonical, _ in changes] == [("deleted", b1_id)]
    assert changes[0][2].startswith(f"{MIGRATION}@")
