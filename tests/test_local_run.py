"""`idminter local-run`: the whole pipeline on the embedded defaults, twice, same IDs."""

import re

from click.testing import CliRunner
from db_helpers import fetch_all

from idminter_pipeline.cli import main


def test_local_run_mints_sample_works_through_dagster_and_is_idempotent(
    registry_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("WORKS_STORE_PATH", raising=False)
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    # A development pool's levels, as `make run` sets them (smaller still: 60 works).
    monkeypatch.setenv("IDMINTER_POOL_TARGET_FREE", "3000")
    monkeypatch.setenv("IDMINTER_POOL_LOW_WATERMARK", "1000")
    monkeypatch.setenv("IDMINTER_POOL_CRITICAL_WATERMARK", "100")
    runner = CliRunner()
    first = runner.invoke(main, ["local-run", "--works", "60"])
    assert first.exit_code == 0, first.output
    assert "60 sample works" in first.output
    figures = re.search(
        r"60 works read, (\d+) written, (\d+) superseded by a successor's document, 0 failed",
        first.output,
    )
    assert figures, first.output
    written, superseded = int(figures.group(1)), int(figures.group(2))
    # Sierra and CALM predecessors whose Folio or Axiell successor holds the document.
    assert written + superseded == 60 and superseded > 0
    minted = int(re.search(r"([\d,]+) minted", first.output).group(1).replace(",", ""))
    assert minted > 0
    assert re.search(
        r"example: Work\[folio-instance/\S+\] inherited (\w{8}) from "
        r"Work\[sierra-system-number/\S+\] \(\1\)",
        first.output,
    )
    # Its items keep the IDs of the Sierra items they replace.
    assert re.search(
        r"example: Item\[folio-item/\S+\] inherited (\w{8}) from "
        r"Item\[sierra-system-number/\S+\] \(\1\)",
        first.output,
    )
    mappings = fetch_all(registry_env, "SELECT SourceId, CanonicalId FROM identifiers ORDER BY 1")
    assert len(mappings) > 60
    # Topped up again after minting: the pool is left at its target, above both watermarks.
    assert "pool, after minting: added" in first.output
    assert re.search(r"registry \w+: 3,000 free IDs", first.output), first.output
    assert "{" not in first.output  # a summary in words, no Python structure

    second = runner.invoke(main, ["local-run", "--works", "60"])
    assert second.exit_code == 0, second.output
    assert " 0 minted, 0 inherited" in second.output
    assert (
        fetch_all(registry_env, "SELECT SourceId, CanonicalId FROM identifiers ORDER BY 1")
        == mappings
    )
    # The run is recorded on the local Dagster instance, where `make ui` finds it.
    assert (tmp_path / "dagster" / "dagster.yaml").exists()
    assert (tmp_path / "local" / "works.sqlite3").exists()
