"""`idminter pool status` and `idminter pool top-up` against the real registry."""

import json

from click.testing import CliRunner
from db_helpers import fetch_all

from idminter_pipeline.cli import main
from idminter_pipeline.registry.connection import connect


def test_top_up_prints_what_it_added_and_how_long_it_took(registry_env):
    result = CliRunner().invoke(main, ["pool", "top-up", "--target", "1200", "--batch-size", "500"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("added 1,200 free IDs in ")
    assert "IDs/s" in result.output
    assert "free 0 -> 1,200 (target 1,200)" in result.output
    assert fetch_all(registry_env, "SELECT COUNT(*) FROM canonical_ids") == [(1_200,)]

    again = CliRunner().invoke(
        main, ["pool", "top-up", "--target", "1500", "--writers", "1", "--json"]
    )
    report = json.loads(again.output)
    assert (report["added"], report["free_before"], report["free_after"]) == (300, 1_200, 1_500)
    assert report["writers"] == 1


def test_top_up_defaults_to_the_configured_target(registry_env, monkeypatch):
    monkeypatch.setenv("IDMINTER_POOL_TARGET_FREE", "300")
    monkeypatch.setenv("IDMINTER_POOL_LOW_WATERMARK", "100")
    monkeypatch.setenv("IDMINTER_POOL_CRITICAL_WATERMARK", "10")
    result = CliRunner().invoke(main, ["pool", "top-up"])
    assert result.exit_code == 0, result.output
    assert "added 300 free IDs" in result.output


def test_bad_values_are_refused_naming_them(registry_env):
    result = CliRunner().invoke(main, ["pool", "top-up", "--target", "-5"])
    assert result.exit_code == 2
    assert "-5" in result.output
    result = CliRunner().invoke(main, ["pool", "top-up", "--target", "10", "--batch-size", "0"])
    assert result.exit_code == 2
    assert "0" in result.output
    assert fetch_all(registry_env, "SELECT COUNT(*) FROM canonical_ids") == [(0,)]


def test_status_prints_counts_rates_and_forecast(registry_env):
    CliRunner().invoke(main, ["pool", "top-up", "--target", "100"])
    conn_rows = fetch_all(registry_env, "SELECT CanonicalId FROM canonical_ids LIMIT 10")
    ids = [value for (value,) in conn_rows]
    conn = connect(registry_env)
    with conn.cursor() as cursor:
        # The minter's claim: AssignedAt is stamped by the column's ON UPDATE.
        cursor.executemany(
            "UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId = %s",
            [(v,) for v in ids],
        )
    conn.commit()
    conn.close()

    result = CliRunner().invoke(main, ["pool", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert (status["free"], status["assigned"], status["total"]) == (90, 10, 100)
    assert status["minted"] == {"last_hour": 10, "last_day": 10, "last_week": 10}
    assert status["hours_until_empty"] == 9.0
    assert status["exhausted_at"] is not None

    text = CliRunner().invoke(main, ["pool", "status"])
    assert text.exit_code == 0, text.output
    assert "free             90" in text.output
    assert "minted last hour 10 (10.0/hour)" in text.output
    assert "runs out in      9.0 hours" in text.output


def test_status_names_the_missing_migration(registry_env, empty_database, monkeypatch):
    monkeypatch.setenv("IDENTIFIERS_DATABASE", empty_database.database)
    result = CliRunner().invoke(main, ["pool", "status"])
    assert result.exit_code == 1
    assert "idminter db migrate" in result.output
