"""`idminter db migrate-legacy | finalize-legacy | rollback-legacy` on a real legacy registry."""

import json

import pytest
from cli_process import process_env
from click.testing import CliRunner
from legacy_helpers import (
    SPECIAL_ROWS,
    legacy_rows,
    make_legacy_registry,
    scratch_database,
    tables,
)

from idminter_pipeline.cli import main
from idminter_pipeline.cli.legacy import EXIT_BLOCKING_PROBLEMS
from idminter_pipeline.core.settings import DatabaseSettings


@pytest.fixture
def legacy_env(server_settings, monkeypatch):
    for settings in scratch_database(server_settings):
        make_legacy_registry(settings, SPECIAL_ROWS)
        for name, value in {
            **settings.as_environment(),
        }.items():
            monkeypatch.setenv(name, value)
        yield settings


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_dry_run_migrate_rollback_migrate_finalize(legacy_env):
    before = legacy_rows(legacy_env, "identifiers")

    dry = _run("db", "migrate-legacy", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["legacy_rows"] == len(SPECIAL_ROWS)
    assert "identifiers_new" not in tables(legacy_env)

    text_dry = _run("db", "migrate-legacy", "--dry-run")
    assert "ids_breaking_current_format: 4" in text_dry.stdout

    migrated = _run("db", "migrate-legacy", "--batch-size", "2")
    assert migrated.exit_code == 0, migrated.output
    assert migrated.stdout.startswith("swapped: 6 rows copied")

    assert _run("db", "rollback-legacy").exit_code == 2  # needs --yes
    rolled = _run("db", "rollback-legacy", "--yes")
    assert rolled.exit_code == 0 and "rolled back" in rolled.stdout
    assert legacy_rows(legacy_env, "identifiers") == before

    assert _run("db", "migrate-legacy", "--json").exit_code == 0
    finalized = _run("db", "finalize-legacy", "--yes")
    assert finalized.exit_code == 0 and finalized.stdout.startswith("finalized")
    assert "identifiers_legacy" not in tables(legacy_env)

    again = _run("db", "migrate-legacy")
    assert again.stdout.startswith("nothing to do")


def test_finalize_without_a_migration_is_refused_with_exit_1(legacy_env):
    result = _run("db", "finalize-legacy", "--yes")
    assert result.exit_code == 1
    assert "nothing to finalize" in result.stderr


def _legacy_env(settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in process_env(settings).items():
        if name.startswith(("RDS_", "IDENTIFIERS_")):
            monkeypatch.setenv(name, value)


def test_a_dry_run_with_blocking_problems_exits_3(legacy_database, monkeypatch):
    too_long = ("abcdefghijk", "Work", "too-long-id", "calm-record-id")
    make_legacy_registry(legacy_database, [*SPECIAL_ROWS, too_long])
    _legacy_env(legacy_database, monkeypatch)
    text = CliRunner().invoke(main, ["db", "migrate-legacy", "--dry-run"])
    assert text.exit_code == EXIT_BLOCKING_PROBLEMS == 3, text.output
    assert "BLOCKING problems found" in text.stdout
    as_json = CliRunner().invoke(main, ["db", "migrate-legacy", "--dry-run", "--json"])
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["blocking"] is True
    usage = CliRunner().invoke(main, ["db", "migrate-legacy", "--help"]).stdout
    assert "3 --dry-run found BLOCKING problems" in " ".join(usage.split())


def test_a_dry_run_without_blocking_problems_exits_0(legacy_database, monkeypatch):
    make_legacy_registry(legacy_database, SPECIAL_ROWS)
    _legacy_env(legacy_database, monkeypatch)
    result = CliRunner().invoke(main, ["db", "migrate-legacy", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "no blocking problems" in result.stdout
