"""Schema drift: every command refuses a registry whose schema is not this project's, naming the
difference and the command that resolves it; `db status` and Dagster show it."""

import json
import threading
import time

import pytest
from click.testing import CliRunner
from db_helpers import fetch_all, run_statements
from legacy_helpers import scratch_database
from port_helpers import PORT_MIGRATION, SPECIAL_ROWS, create_port_registry

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import SchemaDriftError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.schema import (
    DriftKind,
    apply_migrations,
    require_project_schema,
    schema_drift,
)


@pytest.fixture
def port_database(server_settings):
    yield from scratch_database(server_settings)


@pytest.fixture
def port_env(port_database, monkeypatch):
    create_port_registry(port_database, SPECIAL_ROWS)
    for name, value in {
        "RDS_PRIMARY_HOST": port_database.host,
        "RDS_PORT": str(port_database.port),
        "RDS_USERNAME": port_database.username,
        "RDS_PASSWORD": port_database.password,
        "IDENTIFIERS_DATABASE": port_database.database,
    }.items():
        monkeypatch.setenv(name, value)
    return port_database


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_migrate_refuses_a_port_registry_naming_adopt(port_env):
    result = CliRunner().invoke(main, ["db", "migrate"])
    assert result.exit_code == 1, result.output
    line = _error_line(result)
    assert PORT_MIGRATION in line
    assert (
        "identifiers.OntologyType, SourceSystem, SourceId are latin1/latin1_swedish_ci, "
        "this project's utf8mb4/utf8mb4_bin" in line
    )
    assert "run `idminter db adopt`" in line
    # Nothing applied: the history is still the port's alone.
    assert fetch_all(port_env, "SELECT migration_id FROM _yoyo_migration") == [(PORT_MIGRATION,)]


def test_a_case_variant_lookup_on_a_port_registry_is_refused_not_empty(port_env):
    # The server's collation matches b1161044x; an empty answer would be a lie.
    result = CliRunner().invoke(main, ["lookup", "Work[sierra-system-number/B1161044X]"])
    assert result.exit_code == 1, result.output
    assert "run `idminter db adopt`" in _error_line(result)


def test_minting_a_merged_case_variant_on_a_port_registry_is_refused(port_env):
    # Today's failure: an AssertionError "missing right after its insert". Refused instead,
    # before anything is written.
    before = fetch_all(port_env, "SELECT COUNT(*) FROM identifiers")
    result = CliRunner().invoke(
        main, ["mint-ids"], input='{"source": "Work[sierra-system-number/B1161044X]"}\n'
    )
    assert result.exit_code == 1, result.output
    line = _error_line(result)
    assert "AssertionError" not in line
    assert "run `idminter db adopt`" in line
    assert fetch_all(port_env, "SELECT COUNT(*) FROM identifiers") == before


def test_every_registry_command_refuses_a_port_registry(port_env):
    for args in (
        ["reconcile"],
        ["pool", "status"],
        ["pool", "top-up", "--target", "10"],
        ["aliases", "ab2c3d4e"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "run `idminter db adopt`" in _error_line(result), args


def test_the_minter_refuses_after_our_migrations_are_applied_over_the_port_tables(port_database):
    create_port_registry(port_database, SPECIAL_ROWS)
    # What adopt does first: our history beside the port's, the port's tables untouched.
    apply_migrations(lambda: connect(port_database), adopting=True)
    drift = schema_drift(connect(port_database))
    assert drift.kind is DriftKind.PORT
    assert drift.resolution == "idminter db adopt"
    with Minter(lambda: connect(port_database)) as minter, pytest.raises(SchemaDriftError) as error:
        minter.lookup_ids([SourceIdentifier.parse("Work[sierra-system-number/B1161044X]")])
    assert (
        "canonical_ids.CanonicalId, Status are latin1/latin1_swedish_ci, this project's "
        "ascii/ascii_bin" in error.value.differences
    )


def test_db_status_shows_drift_and_this_projects_schema_has_none(port_env, registry):
    result = CliRunner().invoke(main, ["db", "status", "--json"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)["schema"]
    assert schema["drifted"] is True
    assert schema["resolution"] == "idminter db adopt"
    assert any(PORT_MIGRATION in d for d in schema["differences"])
    assert json.loads(result.output)["adoption"]["port_tables_live"] is True
    text = CliRunner().invoke(main, ["db", "status"])
    assert "schema DRIFT" in text.output and "idminter db adopt" in text.output
    conn = connect(registry)
    try:
        assert schema_drift(conn).kind is DriftKind.NONE
        require_project_schema(conn)
    finally:
        conn.close()


def test_a_pending_migration_names_migrate(registry):
    run_statements(
        registry, "DELETE FROM _yoyo_migration WHERE migration_id = '0006_retired_canonical_ids'"
    )
    conn = connect(registry)
    try:
        drift = schema_drift(conn)
        assert drift.kind is DriftKind.PENDING
        assert drift.differences == ("migration(s) not applied: 0006_retired_canonical_ids",)
        with pytest.raises(SchemaDriftError, match="run `idminter db migrate`"):
            require_project_schema(conn)
    finally:
        conn.close()
        apply_migrations(lambda: connect(registry))


@pytest.mark.parametrize(
    ("version", "drifted"),
    [("9999_from_a_later_release", False), ("0004_not_this_projects", True)],
)
def test_a_later_releases_migration_is_not_drift_a_foreign_one_is(registry, version, drifted):
    """Code of release N runs on the schema of N+1 (docs/operations/upgrades.md): a migration
    numbered past every one in sql/ is a later release's; any other unknown one is foreign."""
    conn = connect(registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
                "VALUES (SHA2(%s, 256), %s, UTC_TIMESTAMP())",
                (version, version),
            )
        conn.commit()
        drift = schema_drift(conn)
        assert drift.drifted is drifted, drift
        if drifted:
            assert drift.kind is DriftKind.UNKNOWN_HISTORY
            assert version in drift.differences[0]
        else:
            require_project_schema(conn)
    finally:
        with conn.cursor() as cursor:
            cursor.execute("DELETE FROM _yoyo_migration WHERE migration_id = %s", (version,))
        conn.commit()
        conn.close()


def test_history_read_waits_out_yoyos_upgrade_of_its_own_table(empty_database):
    """A runner started beside another reads yoyo's history while that one upgrades it (first
    layout dropped, current layout created, under yoyo's lock): the read waits, never fails."""
    conn = connect(empty_database)
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE _yoyo_migration (id VARCHAR(255), ctime TIMESTAMP)")
    upgrade_done = threading.Event()

    def upgrade_after_a_moment() -> None:
        time.sleep(0.4)
        other = connect(empty_database)
        with other.cursor() as cursor:
            cursor.execute("DROP TABLE _yoyo_migration")
            cursor.execute(
                "CREATE TABLE _yoyo_migration (migration_hash VARCHAR(64), "
                "migration_id VARCHAR(255), applied_at_utc TIMESTAMP, "
                "PRIMARY KEY (migration_hash))"
            )
        other.close()
        upgrade_done.set()

    upgrader = threading.Thread(target=upgrade_after_a_moment)
    upgrader.start()
    try:
        drift = schema_drift(conn)
    finally:
        conn.close()  # a failed read's open transaction would hold the table the upgrader drops
        upgrader.join()
    assert upgrade_done.is_set()
    assert drift.kind is DriftKind.NOT_APPLIED


def test_a_column_collation_changed_by_hand_is_drift(registry):
    run_statements(
        registry,
        "ALTER TABLE identifiers MODIFY SourceId VARCHAR(255) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL",
    )
    conn = connect(registry)
    try:
        drift = schema_drift(conn)
        assert drift.kind is DriftKind.PORT
        assert drift.differences == (
            "identifiers.SourceId is utf8mb4/utf8mb4_general_ci, this project's "
            "utf8mb4/utf8mb4_bin",
        )
    finally:
        with conn.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE identifiers MODIFY SourceId VARCHAR(255) "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
            )
        conn.close()


def test_dagster_schema_asset_fails_and_its_check_fails_on_a_port_registry(port_database):
    import dagster as dg  # noqa: PLC0415

    from idminter_pipeline.defs.registry.assets import registry_schema  # noqa: PLC0415
    from idminter_pipeline.defs.registry.checks import (  # noqa: PLC0415
        SCHEMA_CHECK,
        registry_schema_is_this_projects,
    )
    from idminter_pipeline.defs.resources import RegistryDatabase  # noqa: PLC0415

    create_port_registry(port_database, SPECIAL_ROWS)
    resources = {"registry_database": RegistryDatabase.from_settings(port_database)}
    materialized = dg.materialize([registry_schema], resources=resources, raise_on_error=False)
    assert not materialized.success
    failure = materialized.get_step_failure_events()[0].event_specific_data.error
    assert failure.cause.cls_name == "SchemaDriftError"
    assert "run `idminter db adopt`" in failure.cause.message
    checked = dg.materialize(
        [registry_schema, registry_schema_is_this_projects],
        resources=resources,
        selection=dg.AssetSelection.checks(registry_schema_is_this_projects),
    )
    (evaluation,) = checked.get_asset_check_evaluations()
    assert evaluation.check_name == SCHEMA_CHECK
    assert evaluation.passed is False
    assert evaluation.metadata["resolution"].value == "idminter db adopt"


def test_the_lambda_refuses_a_port_registry_as_registry_unavailable(
    port_env, tmp_path, monkeypatch
):
    from works_helpers import work  # noqa: PLC0415

    from idminter_pipeline.aws_lambda.handler import handler  # noqa: PLC0415
    from idminter_pipeline.core.errors import RegistryUnavailableError  # noqa: PLC0415
    from idminter_pipeline.works.stores import SqliteWorksStore  # noqa: PLC0415

    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        store.put_source([work("sierra-system-number", "B1161044X")])
    before = fetch_all(port_env, "SELECT COUNT(*) FROM identifiers")
    # Step Functions sees the name its retries are configured for, not an unexpected error.
    with pytest.raises(RegistryUnavailableError, match="run `idminter db adopt`") as error:
        handler({"sourceIdentifiers": ["Work[sierra-system-number/B1161044X]"]}, None)
    assert type(error.value) is RegistryUnavailableError
    assert fetch_all(port_env, "SELECT COUNT(*) FROM identifiers") == before
