"""Every bad document fails alone, at every stage, and the run goes on; full runs resume.

Against the real registry and the embedded store. Each failure kind is planted as stored text in
the second of several batches, so "later batches are still written" is part of every assertion.
"""

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cli_process import run_in_project
from click.testing import CliRunner
from db_helpers import fetch_all
from works_helpers import BAD_DOCUMENTS, fill_pool, node, plant_bad_document, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.checkpoints import JobAlreadyRunningError, RunCheckpoints
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.sample_data import DEFAULT_START
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore

GOOD_WORKS = 23
BATCH = 5
SPACING = timedelta(seconds=1)
# Between good works 7 and 8: in the second batch of five, with three batches after it.
BAD_AT = DEFAULT_START + SPACING * 7 + timedelta(milliseconds=500)
PROJECT = Path(__file__).resolve().parent.parent
CRASHING_CLI = Path(__file__).parent / "works_crash.py"


def _good(count: int = GOOD_WORKS) -> list:
    """Works of their own (no predecessors, so each has its own identified document), one a
    second, each with an item and a subject shared by all of them."""
    works = []
    for n in range(count):
        stamp = (DEFAULT_START + SPACING * n).isoformat(timespec="milliseconds")
        made = work(
            "sierra-system-number",
            f"b{n:03d}",
            indexed_at=stamp.replace("+00:00", "Z"),
            items=(f"i{n:03d}",),
        )
        made.document["data"]["subjects"] = [{"id": node("nlm-mesh", "Subject", "D000001")}]
        works.append(made)
    return works


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "works.sqlite3"


@pytest.fixture
def minter(connect_registry):
    fill_pool(connect_registry, 2_000)
    with Minter(connect_registry) as m:
        yield m


def _mappings(registry) -> dict[tuple, str]:
    rows = fetch_all(
        registry, "SELECT OntologyType, SourceSystem, SourceId, CanonicalId FROM identifiers"
    )
    return {(o, s, i): c for o, s, i, c in rows}


def _identified_source_ids(store_path) -> set[str]:
    with SqliteWorksStore(store_path) as store, store._guarded("read from") as conn:
        return {row[0] for row in conn.execute("SELECT source_id FROM identified_works")}


@pytest.mark.parametrize("kind", sorted(BAD_DOCUMENTS))
def test_a_bad_document_fails_alone_and_every_later_batch_is_written(
    kind, store_path, minter, registry
):
    good = _good()
    with SqliteWorksStore(store_path) as store:
        store.put_source(good)
        bad_id, planted_good = plant_bad_document(store_path, kind, BAD_AT)
        stage, phrase = BAD_DOCUMENTS[kind]
        expected_written = {w.id for w in good} | set(planted_good)

        first = WorksPipeline(store, minter, batch_size=BATCH).run(FullScope())
        assert first.batches == 5 and first.works_read == len(expected_written) + 1
        assert [(f.work_id, str(f.stage)) for f in first.failures] == [(bad_id, stage)]
        assert phrase in first.failures[0].detail
        assert first.failures_by_stage[stage] == 1 and first.failed == 1
        assert first.works_written == len(expected_written)
        assert set(first.processed) == expected_written
        assert _identified_source_ids(store_path) == expected_written
        mappings = _mappings(registry)
        documents = store.get_identified(sorted(set(mappings.values())))

        # A second run over the same store: the same works written again with the same IDs,
        # and only the bad one failing again.
        second = WorksPipeline(store, minter, batch_size=BATCH).run(FullScope())
        assert [(f.work_id, str(f.stage)) for f in second.failures] == [(bad_id, stage)]
        assert second.works_written == len(expected_written)
        assert second.minted == 0 and second.inherited == 0
        assert _mappings(registry) == mappings
        assert store.get_identified(sorted(set(mappings.values()))) == documents


@pytest.mark.parametrize("kind", sorted(BAD_DOCUMENTS))
def test_through_idminter_mint_full(kind, store_path, registry_env, connect_registry, monkeypatch):
    monkeypatch.setenv("WORKS_STORE_PATH", str(store_path))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    fill_pool(connect_registry, 2_000)
    good = _good()
    with SqliteWorksStore(store_path) as store:
        store.put_source(good)
    bad_id, planted_good = plant_bad_document(store_path, kind, BAD_AT)
    stage, phrase = BAD_DOCUMENTS[kind]
    expected_written = len(good) + len(planted_good)
    for _ in range(2):  # and a second run over the same store
        result = CliRunner().invoke(main, ["mint", "--full", "--batch-size", str(BATCH)])
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert report["works_written"] == expected_written
        assert report["processed"] == expected_written
        assert report["batches"] == 5
        assert [(f["sourceIdentifier"], f["stage"]) for f in report["failures"]] == [
            (bad_id, stage)
        ]
        assert phrase in report["failures"][0]["detail"]
        assert report["failures_by_stage"][stage] == 1
    assert len(_identified_source_ids(store_path)) == expected_written


# -- resuming a full run -------------------------------------------------------------------------


class _KilledAtWrite(SqliteWorksStore):
    """The embedded store, dying (as a killed process would) at its n-th batch write."""

    def __init__(self, path, die_at: int):
        super().__init__(path)
        self.die_at = die_at
        self.writes = 0

    def write_identified(self, works):
        self.writes += 1
        if self.writes == self.die_at:
            raise KeyboardInterrupt("killed between mint and write")
        return super().write_identified(works)


def _checkpoint(registry, job_id: str) -> tuple:
    rows = fetch_all(
        registry,
        "SELECT LastWorkId, WorksRead, WorksWritten, Batches, FinishedAt IS NOT NULL "
        "FROM works_run_checkpoints WHERE JobId = %s",
        (job_id.encode(),),
    )
    return rows[0]


def test_a_full_run_resumes_after_its_last_written_batch(
    store_path, connect_registry, minter, registry
):
    good = _good()
    with SqliteWorksStore(store_path) as store:
        store.put_source(good)
    with (
        _KilledAtWrite(store_path, die_at=3) as dying,
        RunCheckpoints(connect_registry) as cp,
        pytest.raises(KeyboardInterrupt),
    ):
        WorksPipeline(dying, minter, batch_size=BATCH).run(
            FullScope(), job_id="nightly-1", checkpoints=cp
        )
    # Two batches written and checkpointed; the third was minted, never written.
    assert _checkpoint(registry, "nightly-1") == (good[9].id, 10, 10, 2, 0)
    assert _identified_source_ids(store_path) == {w.id for w in good[:10]}
    assert ("Item", "folio-item", "i010") in _mappings(registry)

    with SqliteWorksStore(store_path) as store, RunCheckpoints(connect_registry) as cp:
        resumed = WorksPipeline(store, minter, batch_size=BATCH).run(
            FullScope(), job_id="nightly-1", checkpoints=cp
        )
    assert resumed.resumed_from is not None
    assert resumed.resumed_from.position.work_id == good[9].id
    assert resumed.as_dict()["resumed_from"]["works_written"] == 10
    assert resumed.works_read == GOOD_WORKS - 10 and resumed.failed == 0
    assert resumed.processed == [w.id for w in good[10:]]
    assert _identified_source_ids(store_path) == {w.id for w in good}
    assert _checkpoint(registry, "nightly-1") == (good[-1].id, GOOD_WORKS, GOOD_WORKS, 5, 1)

    # A job id whose run finished starts over.
    with SqliteWorksStore(store_path) as store, RunCheckpoints(connect_registry) as cp:
        again = WorksPipeline(store, minter, batch_size=BATCH).run(
            FullScope(), job_id="nightly-1", checkpoints=cp
        )
    assert again.resumed_from is None and again.works_read == GOOD_WORKS


def test_a_job_id_is_held_by_one_run_and_never_resumes_another_store(
    tmp_path, connect_registry, registry
):
    with RunCheckpoints(connect_registry) as holder:
        assert holder.begin("job-a", "sqlite:/one") is None
        with RunCheckpoints(connect_registry) as other, pytest.raises(JobAlreadyRunningError):
            other.begin("job-a", "sqlite:/one")
    with RunCheckpoints(connect_registry) as later:
        assert later.begin("job-a", "sqlite:/one") is None  # released with its connection
        later.close()
    with (
        RunCheckpoints(connect_registry) as elsewhere,
        pytest.raises(InvalidInputError, match="is a full run of sqlite:/one, not of sqlite:/two"),
    ):
        elsewhere.begin("job-a", "sqlite:/two")
    with RunCheckpoints(connect_registry) as cp:
        for bad in ("", "x" * 256):
            with pytest.raises(InvalidInputError, match="invalid job id"):
                cp.begin(bad, "sqlite:/one")
        # Ids differing in case or trailing spaces are different jobs.
        assert cp.begin("Job-A ", "sqlite:/two") is None


def test_only_a_full_run_with_a_job_id_or_a_window_takes_checkpoints(
    store_path, connect_registry, minter
):
    with SqliteWorksStore(store_path) as store, RunCheckpoints(connect_registry) as cp:
        pipeline = WorksPipeline(store, minter)
        with pytest.raises(InvalidInputError, match="only a full run with a job id"):
            pipeline.run(FullScope(), checkpoints=cp)
        with pytest.raises(InvalidInputError, match="only a full run with a job id or a window"):
            pipeline.run(IdsScope(("sierra-system-number/b1",)), job_id="j", checkpoints=cp)


# -- a real process, killed ----------------------------------------------------------------------


def _cli(env: dict, *args: str, kill_at_write: int | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    if kill_at_write is not None:
        environment["IDMINTER_TEST_KILL_AT_WRITE"] = str(kill_at_write)
    return run_in_project([sys.executable, str(CRASHING_CLI), *args], env=environment, timeout=300)


@pytest.fixture
def cli_env(registry, connect_registry, store_path):
    fill_pool(connect_registry, 2_000)
    with SqliteWorksStore(store_path) as store:
        store.put_source(_good())
    return {
        "RDS_PRIMARY_HOST": registry.host,
        "RDS_PORT": str(registry.port),
        "RDS_USERNAME": registry.username,
        "RDS_PASSWORD": registry.password,
        "IDENTIFIERS_DATABASE": registry.database,
        "WORKS_STORE_PATH": str(store_path),
        "ELASTICSEARCH_URL": "",
    }


def test_a_killed_mint_full_resumes_with_the_same_job_id(cli_env, store_path, registry):
    good = _good()
    bad_id, _ = plant_bad_document(store_path, "JSON null", BAD_AT)  # in the second batch
    args = ("mint", "--full", "--job-id", "full-2026-07-30", "--batch-size", str(BATCH))
    killed = _cli(cli_env, *args, kill_at_write=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Batches 1-3 (14 good works and the bad one) written; batch 4 minted, never written.
    assert _identified_source_ids(store_path) == {w.id for w in good[:14]}
    assert _checkpoint(registry, "full-2026-07-30")[:4] == (good[13].id, 15, 14, 3)
    assert ("Work", "sierra-system-number", "b014") in _mappings(registry)

    resumed = _cli(cli_env, *args)
    report = json.loads(resumed.stdout)
    assert report["resumed_from"]["after"].startswith(good[13].id)
    assert report["resumed_from"]["works_failed"] == 1
    assert report["works_read"] == report["works_written"] == GOOD_WORKS - 14
    assert report["works_failed"] == 0
    # The job as a whole had a failed work (before the kill): still exit 1.
    assert resumed.returncode == 1, resumed.stderr
    assert _identified_source_ids(store_path) == {w.id for w in good}
    assert bad_id not in _identified_source_ids(store_path)


def test_works_minted_but_not_written_are_written_by_the_next_run_of_the_scope(
    cli_env, store_path, registry
):
    good = _good()
    window = (
        "--window-start",
        DEFAULT_START.isoformat(),
        "--window-end",
        (DEFAULT_START + SPACING * (GOOD_WORKS - 1)).isoformat(),
    )
    cli_env = {**cli_env, "IDMINTER_WINDOW_CHECKPOINT_SECONDS": "0"}  # each batch recorded
    killed = _cli(cli_env, "mint", *window, "--batch-size", str(BATCH), kill_at_write=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _identified_source_ids(store_path) == {w.id for w in good[:5]}
    minted_before = _mappings(registry)

    again = _cli(cli_env, "mint", *window, "--batch-size", str(BATCH))
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    # The window resumes after its one written batch: the batch minted, not written, is redone.
    assert report["resumed_from"]["batches"] == 1
    assert report["works_written"] == GOOD_WORKS - 5 and report["works_failed"] == 0
    assert _identified_source_ids(store_path) == {w.id for w in good}
    after = _mappings(registry)
    assert {k: after[k] for k in minted_before} == minted_before, "the same IDs, not new ones"
