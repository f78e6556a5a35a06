import json

from click.testing import CliRunner
from db_helpers import fetch_all

from idminter_pipeline.cli import main


def test_migrate_reports_then_changes_nothing(registry_env, empty_database, monkeypatch):
    monkeypatch.setenv("IDENTIFIERS_DATABASE", empty_database.database)
    runner = CliRunner()
    first = runner.invoke(main, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert "applied 0001_create_registry" in first.output
    second = runner.invoke(main, ["db", "migrate"])
    assert second.exit_code == 0
    assert "nothing to apply" in second.output
    assert fetch_all(empty_database, "SELECT COUNT(*) FROM _yoyo_migration")[0][0] >= 1


def test_status_lists_versions_and_counts(registry_env):
    result = CliRunner().invoke(main, ["db", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["migrations"][0]["version"] == "0001_create_registry"
    assert status["migrations"][0]["applied_at"] is not None
    assert status["registry"]["database"] == registry_env.database
    assert status["registry"]["free_ids"] == 0
    text = CliRunner().invoke(main, ["db", "status"])
    assert "0001_create_registry" in text.output
    assert "PENDING" not in text.output


def test_rollback_needs_confirmation(registry_env):
    result = CliRunner().invoke(main, ["db", "rollback"])
    assert result.exit_code == 2
    assert "--yes" in result.output
    tables = fetch_all(registry_env, "SHOW TABLES LIKE 'canonical_ids'")
    assert tables == [("canonical_ids",)]


def test_an_unreachable_registry_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("RDS_PRIMARY_HOST", "127.0.0.1")
    monkeypatch.setenv("RDS_PORT", "1")
    monkeypatch.setenv("RDS_PASSWORD", "never-shown")
    result = CliRunner().invoke(main, ["db", "migrate"])
    assert result.exit_code == 1
    assert "cannot connect to the registry at 127.0.0.1:1" in result.output
    assert "never-shown" not in result.output
    assert "Traceback" not in result.output
