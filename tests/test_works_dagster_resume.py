"""A window's run resumes after a kill: the Dagster run of a window partition of
`identified_works`, SIGKILLed in a real process between a batch's mint and its write, is run
again and goes on after its last written batch, keyed by the window (not by the run). What was
written is counted by the works store itself (a trigger on its identified table records every
write) and the checkpoint is read from the registry, not from the runs' own figures. A window
whose run finished is re-minted whole when run again on purpose.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster_helpers import works_resources
from db_helpers import cli_env, fetch_all
from works_helpers import fill_pool

from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.defs.works.checks import EVERY_WORK_ACCOUNTED_FOR_CHECK
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations
from idminter_pipeline.works.checkpoints import (
    WINDOW_CHECKPOINT_SECONDS_ENV,
    RunCheckpoints,
    WindowAlreadyRunningError,
)
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import SqliteWorksStore, WindowScope

PROJECT = Path(__file__).resolve().parent.parent
CRASHING_RUN = Path(__file__).resolve().parent / "works_crash_dagster.py"
PARTITION = "2026-07-30-09:00"
WINDOW = WindowScope(DEFAULT_START, DEFAULT_START + timedelta(minutes=15), end_inclusive=False)
WORKS = 120  # one every 5 s: all in the 09:00 window
BATCH = 10
KILL_AT_WRITE = 5  # batches 1 to 4 written; the 5th minted, never written


@pytest.fixture(autouse=True)
def every_batch_recorded(monkeypatch):
    """Windows record their checkpoint after every batch, so a kill's place is exact."""
    monkeypatch.setenv(WINDOW_CHECKPOINT_SECONDS_ENV, "0")


@pytest.fixture
def window_store(tmp_path, connect_registry) -> Path:
    """The window's works in an embedded store that records every identified write it takes."""
    fill_pool(connect_registry, 2_000)
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(generate_works(WORKS, seed=29, spacing=timedelta(seconds=5)))
    with closing(sqlite3.connect(store_path)) as db, db:
        db.executescript(
            """
            CREATE TABLE identified_writes (source_id TEXT NOT NULL);
            CREATE TRIGGER identified_inserted AFTER INSERT ON identified_works
            BEGIN INSERT INTO identified_writes VALUES (NEW.source_id); END;
            CREATE TRIGGER identified_updated AFTER UPDATE ON identified_works
            BEGIN INSERT INTO identified_writes VALUES (NEW.source_id); END;
            """
        )
    return store_path


def _writes(store_path: Path) -> Counter[str]:
    """How many times the store wrote each work's identified document."""
    with closing(sqlite3.connect(store_path)) as db:
        return Counter(row[0] for row in db.execute("SELECT source_id FROM identified_writes"))


def _identified(store_path: Path) -> list[str]:
    with closing(sqlite3.connect(store_path)) as db:
        return [row[0] for row in db.execute("SELECT source_id FROM identified_works")]


def _checkpoint(registry) -> tuple | None:
    rows = fetch_all(
        registry,
        "SELECT Batches, WorksRead, FinishedAt IS NOT NULL FROM works_run_checkpoints "
        "WHERE RunKind = 'window' AND JobId = %s",
        (WINDOW.describe().encode(),),
    )
    return rows[0] if rows else None


def _materialize(registry, store_path: Path, tmp_path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [identified_works],
        partition_key=PARTITION,
        run_config={"ops": {"identified_works": {"config": {"batch_size": BATCH}}}},
        resources=works_resources(registry, store_path, tmp_path / "alerts.log"),
    )


def _figures(result: dg.ExecuteInProcessResult) -> dict:
    (materialization,) = result.asset_materializations_for_node("identified_works")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_a_killed_window_run_resumes_after_its_last_written_batch(registry, window_store, tmp_path):
    env = cli_env(
        registry,
        WORKS_STORE_PATH=str(window_store),
        ELASTICSEARCH_URL="",
        IDMINTER_TEST_KILL_AT_WRITE=str(KILL_AT_WRITE),
        IDMINTER_WINDOW_CHECKPOINT_SECONDS="0",
        IDMINTER_TEST_ALERTS_LOG=str(tmp_path / "alerts.log"),
    )
    killed = subprocess.run(
        [sys.executable, str(CRASHING_RUN), PARTITION, str(BATCH)],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Four batches written and checkpointed in the registry; the fifth minted, not written.
    assert _checkpoint(registry) == (4, 40, 0)
    written_before = _writes(window_store)
    assert written_before and max(written_before.values()) == 1

    result = _materialize(registry, window_store, tmp_path)
    assert result.success
    figures = _figures(result)
    assert figures["batches_resumed"] == 4 and figures["works_resumed"] == 40
    assert figures["works_read"] == WORKS - 40
    assert figures["resumed_after"].startswith("Work[")
    # Counted by the store: no work of the four written batches was written again, and every
    # write of the window happened once.
    written = _writes(window_store)
    assert set(written_before) < set(written)
    assert max(written.values()) == 1, [w for w, n in written.items() if n > 1]
    # Every work identified exactly once, as the stores and the registry account for them.
    identified = _identified(window_store)
    assert len(identified) == len(set(identified)) == len(written)
    [audit] = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == EVERY_WORK_ACCOUNTED_FOR_CHECK
    ]
    assert audit.passed, audit.description
    assert audit.metadata["works_in_scope"].value == WORKS
    assert audit.metadata["works_not_accounted_for"].value == 0
    assert _checkpoint(registry) == (WORKS // BATCH, WORKS, 1)


def test_a_finished_window_run_again_re_mints_the_whole_window(registry, window_store, tmp_path):
    first = _materialize(registry, window_store, tmp_path)
    assert first.success
    written_once = _writes(window_store)
    assert _checkpoint(registry) == (WORKS // BATCH, WORKS, 1)

    again = _materialize(registry, window_store, tmp_path)
    assert again.success
    figures = _figures(again)
    assert figures["batches_resumed"] == 0 and figures["works_read"] == WORKS
    assert figures["identifiers_minted"] == 0
    # Counted by the store: every work written by the first run was written again.
    assert _writes(window_store) == Counter({work: 2 for work in written_once})
    assert _checkpoint(registry) == (WORKS // BATCH, WORKS, 1)


class _DiesAtWrite(SqliteWorksStore):
    def __init__(self, path: Path, die_at: int) -> None:
        super().__init__(path)
        self.die_at, self.writes = die_at, 0

    def write_identified(self, works):
        self.writes += 1
        if self.writes == self.die_at:
            raise KeyboardInterrupt("killed between mint and write")
        return super().write_identified(works)


def _killed_at_write(store_path: Path, minter, connect_registry, die_at: int) -> None:
    with (
        _DiesAtWrite(store_path, die_at) as dying,
        RunCheckpoints(connect_registry) as checkpoints,
        pytest.raises(KeyboardInterrupt),
    ):
        WorksPipeline(dying, minter, batch_size=BATCH).run(WINDOW, checkpoints=checkpoints)


def test_a_killed_window_whose_batches_failed_works_starts_over(
    registry, window_store, minter, connect_registry
):
    """So the window's no_failed_works check judges every work of it, not only the rest."""
    with closing(sqlite3.connect(window_store)) as db, db:
        (first,) = db.execute("SELECT id FROM source_works ORDER BY indexed_at_us LIMIT 1")
        db.execute("UPDATE source_works SET document = 'null' WHERE id = ?", first)
    _killed_at_write(window_store, minter, connect_registry, die_at=3)
    [(batches, failed)] = fetch_all(
        registry,
        "SELECT Batches, WorksFailed FROM works_run_checkpoints WHERE RunKind = 'window'",
    )
    assert batches == 2 and failed > 0
    with SqliteWorksStore(window_store) as store, RunCheckpoints(connect_registry) as checkpoints:
        again = WorksPipeline(store, minter, batch_size=BATCH).run(WINDOW, checkpoints=checkpoints)
    assert again.resumed_from is None
    assert again.works_read == WORKS and again.failed == failed


def test_a_second_run_of_a_window_being_run_mints_it_whole_without_the_checkpoint(
    registry, window_store, minter, connect_registry
):
    _killed_at_write(window_store, minter, connect_registry, die_at=3)
    assert _checkpoint(registry) == (2, 20, 0)
    with RunCheckpoints(connect_registry) as holder:
        with SqliteWorksStore(window_store) as store:
            held = holder.begin_window(WINDOW, store.describe())
        assert held is not None and held.batches == 2
        with SqliteWorksStore(window_store) as store, RunCheckpoints(connect_registry) as other:
            second = WorksPipeline(store, minter, batch_size=BATCH).run(WINDOW, checkpoints=other)
        assert second.resumed_from is None and second.works_read == WORKS
        assert second.checkpoint_held_elsewhere
        # The checkpoint is the holder's: the second run did not move it.
        assert _checkpoint(registry) == (2, 20, 0)
    # Released: the next run resumes it.
    with SqliteWorksStore(window_store) as store, RunCheckpoints(connect_registry) as checkpoints:
        resumed = WorksPipeline(store, minter, batch_size=BATCH).run(
            WINDOW, checkpoints=checkpoints
        )
    assert resumed.resumed_from is not None and resumed.resumed_from.batches == 2
    assert resumed.works_read == WORKS - 20
    assert _checkpoint(registry) == (WORKS // BATCH, WORKS, 1)


def test_a_window_checkpoint_from_another_store_is_not_resumed(
    registry, window_store, minter, connect_registry, tmp_path
):
    _killed_at_write(window_store, minter, connect_registry, die_at=3)
    other_path = tmp_path / "other.sqlite3"
    with SqliteWorksStore(other_path) as other:
        other.put_source(generate_works(WORKS, seed=29, spacing=timedelta(seconds=5)))
    with SqliteWorksStore(other_path) as store, RunCheckpoints(connect_registry) as checkpoints:
        run = WorksPipeline(store, minter, batch_size=BATCH).run(WINDOW, checkpoints=checkpoints)
    assert run.resumed_from is None and run.works_read == WORKS
    assert fetch_all(
        registry, "SELECT Store, Batches, FinishedAt IS NOT NULL FROM works_run_checkpoints"
    ) == [(run.store, WORKS // BATCH, 1)]


def test_a_window_records_its_checkpoint_at_most_every_interval(
    registry, window_store, minter, connect_registry, monkeypatch
):
    """A window shorter than the interval writes no checkpoint; killed, it is redone whole."""
    monkeypatch.setenv(WINDOW_CHECKPOINT_SECONDS_ENV, "3600")
    _killed_at_write(window_store, minter, connect_registry, die_at=3)
    assert _checkpoint(registry) is None
    with SqliteWorksStore(window_store) as store, RunCheckpoints(connect_registry) as checkpoints:
        run = WorksPipeline(store, minter, batch_size=BATCH).run(WINDOW, checkpoints=checkpoints)
    assert run.resumed_from is None and run.works_read == WORKS
    assert _checkpoint(registry) is None


def test_registries_sharing_a_server_hold_their_windows_apart(
    registry, connect_registry, empty_database
):
    """Lock names are server-wide: another registry's run of the same window is not this one."""
    apply_migrations(lambda: connect(empty_database))
    with (
        RunCheckpoints(connect_registry) as here,
        RunCheckpoints(lambda: connect(empty_database)) as elsewhere,
    ):
        here.begin_window(WINDOW, "sqlite:/one")
        elsewhere.begin_window(WINDOW, "sqlite:/one")
        with RunCheckpoints(connect_registry) as second, pytest.raises(WindowAlreadyRunningError):
            second.begin_window(WINDOW, "sqlite:/one")
