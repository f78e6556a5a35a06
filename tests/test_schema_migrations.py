import multiprocessing

from db_helpers import fetch_all

from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import (
    apply_migrations,
    migration_status,
    migrations_dir,
    rollback_migrations,
)

REGISTRY_TABLES = {"canonical_ids", "identifiers"}


def _tables(settings) -> set[str]:
    rows = fetch_all(
        settings,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    return {name for (name,) in rows}


def _all_versions() -> list[str]:
    return sorted(
        p.stem
        for p in [*migrations_dir().glob("*.sql"), *migrations_dir().glob("*.py")]
        if ".rollback" not in p.name
    )


def test_every_migration_has_a_rollback():
    for version in _all_versions():
        python = migrations_dir() / f"{version}.py"
        if python.is_file():  # a Python migration declares its rollback beside each step
            assert "def rollback(" in python.read_text(), version
        else:
            assert (migrations_dir() / f"{version}.rollback.sql").is_file(), version


def test_migrate_applies_everything_once(empty_database):
    factory = lambda: connect(empty_database)  # noqa: E731
    assert [s.version for s in migration_status(factory) if not s.applied] == _all_versions()

    assert apply_migrations(factory) == _all_versions()
    assert _tables(empty_database) >= REGISTRY_TABLES
    assert all(s.applied for s in migration_status(factory))

    assert apply_migrations(factory) == []


def test_a_migration_run_asks_the_server_for_its_sql_mode_once(empty_database):
    sent: list[str] = []

    def recording_connection():
        conn = connect(empty_database)
        send = conn.query
        conn.query = lambda sql, unbuffered=False: sent.append(sql) or send(sql, unbuffered)
        return conn

    assert apply_migrations(recording_connection) == _all_versions()
    asked = [sql for sql in sent if sql.startswith("SHOW VARIABLES LIKE 'sql_mode'")]
    assert len(asked) == 1


def test_the_schema_has_the_rfc_keys(empty_database):
    apply_migrations(lambda: connect(empty_database))
    keys = fetch_all(
        empty_database,
        "SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) "
        "FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "AND table_name IN ('canonical_ids', 'identifiers') GROUP BY table_name, index_name",
    )
    assert set(keys) >= {
        ("canonical_ids", "PRIMARY", "CanonicalId"),
        ("canonical_ids", "idx_free", "Status,CanonicalId"),
        ("identifiers", "PRIMARY", "OntologyType,SourceSystem,SourceId"),
        ("identifiers", "idx_canonical", "CanonicalId"),
    }
    foreign_keys = fetch_all(
        empty_database,
        "SELECT table_name, column_name, referenced_table_name, referenced_column_name "
        "FROM information_schema.key_column_usage WHERE table_schema = DATABASE() "
        "AND referenced_table_name IS NOT NULL AND table_name = 'identifiers'",
    )
    assert ("identifiers", "CanonicalId", "canonical_ids", "CanonicalId") in foreign_keys


def test_rollback_and_reapply(empty_database):
    factory = lambda: connect(empty_database)  # noqa: E731
    apply_migrations(factory)
    rolled_back = rollback_migrations(factory, count=len(_all_versions()))
    assert rolled_back == list(reversed(_all_versions()))
    assert not REGISTRY_TABLES & _tables(empty_database)
    assert not any(s.applied for s in migration_status(factory))
    assert apply_migrations(factory) == _all_versions()
    assert _tables(empty_database) >= REGISTRY_TABLES


def test_rolling_back_the_schema_keeps_a_legacy_identifiers_table(empty_database):
    conn = connect(empty_database)
    with conn.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE identifiers (CanonicalId varchar(255) NOT NULL PRIMARY KEY, "
            "OntologyType varchar(255) NOT NULL, SourceId varchar(255) NOT NULL, "
            "SourceSystem varchar(255) NOT NULL) DEFAULT CHARSET=latin1"
        )
        cursor.execute("INSERT INTO identifiers VALUES ('abcdefgh', 'Work', 'b1', 'sierra')")
    conn.commit()
    conn.close()
    factory = lambda: connect(empty_database)  # noqa: E731
    apply_migrations(factory)
    rollback_migrations(factory, count=len(_all_versions()))
    assert fetch_all(empty_database, "SELECT CanonicalId, SourceId FROM identifiers") == [
        ("abcdefgh", "b1")
    ]


def _migrate_in_process(settings, results):
    results.put(apply_migrations(lambda: connect(settings)))


def test_concurrent_runners_apply_each_migration_exactly_once(empty_database):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    runners = [
        context.Process(target=_migrate_in_process, args=(empty_database, results))
        for _ in range(4)
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=120)
        assert runner.exitcode == 0
    applied = sorted((results.get(timeout=5) for _ in runners), key=len)
    assert applied[:-1] == [[], [], []]
    assert applied[-1] == _all_versions()
    logged = fetch_all(empty_database, "SELECT COUNT(*) FROM _yoyo_migration")
    assert logged == [(len(_all_versions()),)]
