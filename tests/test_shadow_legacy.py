"""Shadowing on a registry whose legacy migration holds at its synced phase: the shadow reads the
verified copy, `legacy-status` shows how far it lags the legacy table, `sync-legacy` catches it
up, and the shadow changes nothing in either table."""

import copy
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
from click.testing import CliRunner
from db_helpers import fetch_all
from legacy_helpers import INSERT_LEGACY, make_legacy_registry
from registry_invariants import registry_snapshot
from works_helpers import work

from idminter_pipeline.cli import main
from idminter_pipeline.defs.legacy.assets import LegacyMigrationConfig, legacy_registry_migration
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.works.stores import SqliteWorksStore

SIERRA = "sierra-system-number"
LEGACY_ROWS = [
    ("leg00001", "Work", "b1", SIERRA),
    ("leg00002", "Work", "b2", SIERRA),
    ("leg00003", "Work", "b3", SIERRA),
]


@pytest.fixture
def legacy_env(legacy_database, tmp_path, monkeypatch):
    settings = make_legacy_registry(legacy_database, LEGACY_ROWS)
    for name, value in {
        **settings.as_environment(),
        "WORKS_STORE_PATH": str(tmp_path / "works.sqlite3"),
        "IDMINTER_LOCAL_DIR": str(tmp_path / "local"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    return settings


def _invoke(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _legacy_output(source_work, canonical_id):
    """What the legacy minter writes for a work without nested identifiers."""
    document = copy.deepcopy(source_work.document)
    document["state"]["canonicalId"] = canonical_id
    return document


def _reference(tmp_path, works):
    path = tmp_path / "legacy-identified.sqlite3"
    SqliteWorksStore(path).close()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO identified_works (canonical_id, source_id, document) VALUES (?, ?, ?)",
            [(cid, w.id, json.dumps(_legacy_output(w, cid))) for w, cid in works],
        )
    db.close()
    return path


def _shadow(reference):
    result = _invoke("shadow", "--full", "--reference", str(reference))
    return result.exit_code, json.loads(result.stdout) if result.stdout else result.output


def test_a_legacy_registry_without_a_synced_copy_is_refused(legacy_env, tmp_path):
    SqliteWorksStore(tmp_path / "works.sqlite3").close()  # a store to read (else refused first)
    reference = _reference(tmp_path, [])
    result = _invoke("shadow", "--full", "--reference", str(reference))
    assert result.exit_code == 1
    assert "migrate-legacy --hold-synced" in result.output


def test_shadow_reads_the_synced_copy_and_sync_legacy_closes_the_lag(legacy_env, tmp_path):
    works = [work(SIERRA, f"b{n}") for n in (1, 2, 3, 4)]
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        store.put_source(works)

    held = _invoke("db", "migrate-legacy", "--hold-synced")
    assert held.exit_code == 0, held.output
    assert "held at its synced phase" in held.output
    status = json.loads(_invoke("db", "legacy-status").stdout)
    assert status["shape"] == "legacy"
    assert status["phase"] == "copied"
    assert status["held_synced"] is True
    assert status["lag"]["pending_changes"] == 0

    # The legacy minter keeps minting: b4 reaches the legacy table and its output, not the copy.
    conn = connect(legacy_env)
    with conn.cursor() as cursor:
        cursor.execute(
            INSERT_LEGACY.format(table="identifiers"), ("leg00004", "Work", "b4", SIERRA)
        )
    conn.commit()
    conn.close()
    reference = _reference(
        tmp_path,
        [(w, cid) for w, (cid, *_) in zip(works, [*LEGACY_ROWS, ("leg00004",)], strict=True)],
    )
    status = json.loads(_invoke("db", "legacy-status").stdout)
    assert status["lag"]["pending_changes"] == 1
    assert status["lag"]["oldest_pending_change_at"] is not None
    assert status["lag"]["lag_seconds"] >= 0

    before = registry_snapshot(legacy_env)
    code, report = _shadow(reference)
    assert code == 0, report
    assert report["registry"] == {
        "table": "identifiers_new",
        "registry_shape": "legacy",
        "migration_phase": "copied",
        "pending_legacy_changes": 1,
    }
    assert report["counts"]["agree"] == 3
    assert report["counts"]["would_mint"] == 1
    assert report["would_mint_in_reference"] == 1
    assert registry_snapshot(legacy_env) == before

    synced = _invoke("db", "sync-legacy")
    assert synced.exit_code == 0, synced.output
    sync = json.loads(synced.stdout)
    assert sync["changes_applied"] == 1
    assert sync["lag"]["pending_changes"] == 0
    assert fetch_all(
        legacy_env, "SELECT CanonicalId FROM identifiers_new WHERE SourceId = 'b4'"
    ) == [("leg00004",)]

    code, report = _shadow(reference)
    assert code == 0, report
    assert report["counts"]["agree"] == 4
    assert report["registry"]["pending_legacy_changes"] == 0


def test_sync_legacy_refuses_a_registry_that_does_not_hold(legacy_env):
    result = _invoke("db", "sync-legacy")
    assert result.exit_code == 1
    assert "migrate-legacy --hold-synced" in result.output


def test_the_migration_asset_can_hold_at_the_synced_phase_and_shows_the_lag(legacy_env):
    config = LegacyMigrationConfig(hold_synced=True)
    result = dg.materialize(
        [legacy_registry_migration],
        resources={"registry_database": RegistryDatabase.from_settings(legacy_env)},
        run_config=dg.RunConfig({"legacy_registry_migration": config}),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("legacy_registry_migration")[0].metadata
    assert metadata["swapped"].value is False
    assert metadata["verified"].value is True
    assert metadata["held_synced"].value is True
    assert metadata["pending_legacy_changes"].value == 0
    assert json.loads(_invoke("db", "legacy-status").stdout)["phase"] == "copied"


def test_legacy_status_reads_one_snapshot_while_the_legacy_minter_writes(legacy_env):
    """The change log counted at the top (`pending_changes`) and under `lag` is the same read,
    however fast the legacy minter writes meanwhile."""
    assert _invoke("db", "migrate-legacy", "--hold-synced").exit_code == 0
    stop = threading.Event()

    def legacy_minter() -> int:
        conn = connect(legacy_env)
        written = 0
        try:
            with conn.cursor() as cursor:
                while not stop.is_set():
                    written += 1
                    row = (f"wrt{written:05d}", "Work", f"w{written}", SIERRA)
                    cursor.execute(INSERT_LEGACY.format(table="identifiers"), row)
                    conn.commit()
        finally:
            conn.close()
        return written

    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(legacy_minter)
        try:
            statuses = [json.loads(_invoke("db", "legacy-status").stdout) for _ in range(40)]
        finally:
            stop.set()
        written = writing.result()
    assert written > 40  # the legacy minter wrote throughout
    assert statuses[-1]["pending_changes"] > statuses[0]["pending_changes"]
    split = [
        (status["pending_changes"], status["lag"]["pending_changes"])
        for status in statuses
        if status["pending_changes"] != status["lag"]["pending_changes"]
    ]
    assert split == []
