"""Every work accounted for (`works.audit`) and the sweeper (`works.sweeper`), against the real
registry and the embedded store, through the library and `idminter works audit|sweep`."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from works_helpers import embedded_store_holding, fill_pool, plant_bad_document, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import WorksStoreError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.assets import identified_works, swept_works
from idminter_pipeline.defs.works.checks import EVERY_WORK_ACCOUNTED_FOR_CHECK
from idminter_pipeline.defs.works.jobs import sweep_works_job
from idminter_pipeline.defs.works.partitions import WINDOW_MINUTES
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.defs.works.schedules import sweep_missing_works
from idminter_pipeline.defs.works.sensors import (
    recover_from_pool_exhaustion,
    works_run_failure_alert,
)
from idminter_pipeline.works.audit import Outcome, RunReport, audit
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.stores import FullScope, SqliteWorksStore, WindowScope
from idminter_pipeline.works.sweeper import sweep

WINDOW = WindowScope("2026-07-30T09:00:00Z", "2026-07-30T09:15:00Z", end_inclusive=False)


def _stamp(minute: int, second: int = 0) -> str:
    return f"2026-07-30T09:{minute:02d}:{second:02d}.000Z"


def _window_works(count: int = 12):
    return [
        work("sierra-system-number", f"b{n}", indexed_at=_stamp(n % 15), items=(f"i{n}",))
        for n in range(count)
    ]


def _canonical_ids(minter, work_ids):
    return list(minter.lookup_ids(SourceIdentifier.parse(i) for i in work_ids).values())


@pytest.fixture
def minted_window(store, minter, connect_registry):
    """A window of works in the store, minted and written by the pipeline."""
    fill_pool(connect_registry, 500)
    store.put_source(_window_works())
    summary = WorksPipeline(store, minter).run(WINDOW)
    assert summary.works_written == 12 and not summary.failed
    return store


def test_a_cleanly_minted_window_is_all_written(minted_window, minter):
    report = audit(minted_window, minter.lookup_ids, WINDOW)
    assert report.in_scope == 12
    assert report.counts[Outcome.WRITTEN] == 12
    assert report.difference_count == 0 and report.difference == []
    assert report.describe().startswith("all 12 works")


def test_works_lost_after_the_run_are_the_difference_named_work_by_work(minted_window, minter):
    # The run said 12 written; three documents then vanish from the identified store.
    lost = ["Work[sierra-system-number/b3]", "Work[sierra-system-number/b7]"]
    minted_window.delete_identified(_canonical_ids(minter, lost))

    report = audit(minted_window, minter.lookup_ids, WINDOW)
    assert report.in_scope == 12
    assert report.counts[Outcome.WRITTEN] == 10
    assert report.difference_count == 2
    assert sorted(w.work_id for w in report.difference) == lost
    assert {w.outcome for w in report.difference} == {Outcome.MISSING}
    assert all("no identified document" in w.detail for w in report.difference)
    assert report.accounted + report.difference_count == report.in_scope
    frame = report.difference_frame()
    assert sorted(frame["work_id"]) == lost


def test_failed_and_superseded_works_are_accounted_for_not_the_difference(
    store, minter, connect_registry, tmp_path
):
    fill_pool(connect_registry, 500)
    bad_id, _ = plant_bad_document(
        tmp_path / "works.sqlite3", "not JSON", datetime(2026, 7, 30, 9, 1, tzinfo=UTC)
    )
    store.put_source(
        [
            work("sierra-system-number", "b1", indexed_at=_stamp(2)),
            work(
                "folio-instance",
                "f1",
                indexed_at=_stamp(3),
                predecessor=("sierra-system-number", "b1"),
            ),
        ]
    )
    summary = WorksPipeline(store, minter).run(WINDOW)
    assert summary.failed == 1 and summary.works_superseded == 1

    report = audit(store, minter.lookup_ids, WINDOW)
    assert report.in_scope == 3 and report.difference_count == 0
    assert report.counts[Outcome.WRITTEN] == 1
    assert report.counts[Outcome.SUPERSEDED] == 1
    assert report.counts[Outcome.FAILED] == 1
    (failed,) = report.failed
    assert failed.work_id == bad_id and failed.detail.startswith("read: ")


def test_a_work_the_run_reported_failed_or_skipped_is_counted_with_its_reason(
    minted_window, minter
):
    failed_id, skipped_id = "Work[sierra-system-number/b4]", "Work[sierra-system-number/b5]"
    minted_window.delete_identified(_canonical_ids(minter, [failed_id, skipped_id]))
    reported = RunReport(
        failed={failed_id: "mint: churn guard"}, skipped={skipped_id: "deleted upstream"}
    )
    report = audit(minted_window, minter.lookup_ids, WINDOW, reported=reported)
    assert report.difference_count == 0
    assert [(w.work_id, w.detail) for w in report.failed] == [(failed_id, "mint: churn guard")]
    assert [(w.work_id, w.detail) for w in report.skipped] == [(skipped_id, "deleted upstream")]


def test_a_late_write_into_a_processed_window_is_found_and_swept(minted_window, minter):
    """A source document written into a window that was already processed: a new work, and a
    new version of a work already minted, both with `indexed_at` inside the window."""
    late_new = work("sierra-system-number", "b-late", indexed_at=_stamp(14, 30), items=("i-l",))
    rewritten = work("sierra-system-number", "b2", indexed_at=_stamp(14, 45), items=("i2",))
    rewritten.document["data"]["title"] = "corrected title"
    minted_window.put_source([late_new, rewritten])

    found = audit(minted_window, minter.lookup_ids, WINDOW)
    assert found.in_scope == 13 and found.difference_count == 2
    by_id = {w.work_id: w for w in found.difference}
    assert by_id[late_new.id].outcome is Outcome.MISSING
    assert by_id[rewritten.id].outcome is Outcome.STALE
    assert "older than the source's 2026-07-30T09:14:45" in by_id[rewritten.id].detail

    minted_scopes = []

    def mint(scope):
        minted_scopes.append(scope)
        return WorksPipeline(minted_window, minter).run(scope)

    report = sweep(minted_window, minter.lookup_ids, FullScope(), mint)
    assert report.works_found == 2 and report.works_written == 2 and report.works_failed == 0
    assert [sorted(s.ids) for s in minted_scopes] == [sorted([late_new.id, rewritten.id])]

    after = audit(minted_window, minter.lookup_ids, WINDOW)
    assert after.difference_count == 0 and after.counts[Outcome.WRITTEN] == 13
    canonical_id = by_id[rewritten.id].canonical_id
    assert minted_window.get_identified([canonical_id])[canonical_id]["data"]["title"] == (
        "corrected title"
    )
    # Nothing left: a second sweep mints nothing.
    assert sweep(minted_window, minter.lookup_ids, FullScope(), mint).works_minted == 0
    assert len(minted_scopes) == 1


def test_the_sweeper_mints_in_chunks(minted_window, minter):
    late = [work("sierra-system-number", f"b-late{n}", indexed_at=_stamp(1, n)) for n in range(5)]
    minted_window.put_source(late)
    sizes = []

    def mint(scope):
        sizes.append(len(scope.ids))
        return WorksPipeline(minted_window, minter).run(scope)

    report = sweep(minted_window, minter.lookup_ids, FullScope(), mint, chunk=2)
    assert sizes == [2, 2, 1] and report.works_written == 5


# -- the commands ---------------------------------------------------------------------------------


@pytest.fixture
def cli_store(registry_env, connect_registry, tmp_path, monkeypatch):
    return embedded_store_holding(monkeypatch, tmp_path, _window_works(), connect_registry, 500)


WINDOW_ARGS = ["--window-start", "2026-07-30T09:00:00Z", "--window-end", "2026-07-30T09:14:59Z"]


def test_the_audit_command_exits_1_naming_the_difference_and_the_sweep_closes_it(cli_store):
    runner = CliRunner()
    minted = runner.invoke(main, ["mint", "--source-identifiers", "sierra-system-number/b1"])
    assert minted.exit_code == 0, minted.output

    result = runner.invoke(main, ["works", "audit", *WINDOW_ARGS])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["works_in_scope"] == 12
    assert report["counts"]["written"] == 1 and report["difference"] == 11
    assert len(report["difference_listed"]) == 11
    assert "Work[sierra-system-number/b0]" in {w["work_id"] for w in report["difference_listed"]}

    swept = runner.invoke(main, ["works", "sweep", "--full"])
    assert swept.exit_code == 0, swept.output
    assert json.loads(swept.stdout)["works_written"] == 11

    clean = runner.invoke(main, ["works", "audit", *WINDOW_ARGS])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["counts"]["written"] == 12


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["--window-start", "2026-07-30T10:00:00Z", "--window-end", "2026-07-30T09:00:00Z"],
            "09:00",
        ),
        (["--source-identifiers", "b1161044x"], "b1161044x"),
        (["--window-start", "yesterday", "--window-end", "2026-07-30T09:00:00Z"], "yesterday"),
    ],
)
@pytest.mark.parametrize("command", ["audit", "sweep"])
def test_bad_scopes_are_one_error_line_and_nothing_is_written(cli_store, command, args, named):
    result = CliRunner().invoke(main, ["works", command, *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0]
    with sqlite3.connect(cli_store) as db:
        assert db.execute("SELECT COUNT(*) FROM identified_works").fetchone() == (0,)


def test_audit_refuses_a_missing_store_naming_it(registry_env, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "nowhere.sqlite3"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    result = CliRunner().invoke(main, ["works", "audit", "--full"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: works store {tmp_path / 'nowhere.sqlite3'}: no such file (WORKS_STORE_PATH)"
    )
    assert not (tmp_path / "nowhere.sqlite3").exists()


# -- in Dagster -----------------------------------------------------------------------------------


class _LosingStore(SqliteWorksStore):
    """A store that acknowledges every write and silently keeps none of `lose`'s documents: a
    run's counters then say written, and only the stores can tell."""

    lose: frozenset[str] = frozenset()

    def write_identified(self, works):
        return super().write_identified([w for w in works if w.source_id not in self.lose])


class _LosingStoreResource(WorksStoreResource):
    lose: str = ""  # a work id, or none

    def open(self):
        store = _LosingStore(self.sqlite_path)
        store.lose = frozenset({self.lose} - {""})
        return store


def _dagster_resources(registry, store_path, alerts_log, lose=()):
    return {
        "works_store": _LosingStoreResource(sqlite_path=str(store_path), lose="".join(lose)),
        "registry_database": RegistryDatabase.from_settings(registry),
        "churn_guard": ChurnGuardResource(),
        "alerts": AlertsResource(log_file=str(alerts_log)),
        "downstream": DownstreamTopicResource(),
    }


@pytest.mark.parametrize("lose", [(), ("Work[sierra-system-number/b3]",)])
def test_the_window_check_counts_from_the_stores_not_the_runs_counters(
    registry, connect_registry, tmp_path, lose
):
    fill_pool(connect_registry, 500)
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(_window_works())
    alerts_log = tmp_path / "alerts.log"
    result = dg.materialize(
        [identified_works],
        partition_key="2026-07-30-09:00",
        resources=_dagster_resources(registry, store_path, alerts_log, lose),
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("identified_works")
    assert materialization.metadata["works_written"].value == 12  # what the run believes
    [check] = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == EVERY_WORK_ACCOUNTED_FOR_CHECK
    ]
    assert check.partition == "2026-07-30-09:00"
    figures = {k: v.value for k, v in check.metadata.items()}
    assert figures["works_in_scope"] == 12
    assert figures["works_written"] == 12 - len(lose)
    assert figures["works_not_accounted_for"] == len(lose)
    assert [w["work_id"] for w in figures["difference"]] == list(lose)
    assert check.passed is not lose
    if lose:
        assert "1 of 12 works" in check.description and lose[0] in check.description
        alert = alerts_log.read_text()
        assert "1 work(s) not accounted for" in alert and lose[0] in alert
    else:
        assert not alerts_log.exists() or "not accounted for" not in alerts_log.read_text()


def test_the_sweeper_asset_mints_a_late_write_and_alerts(registry, connect_registry, tmp_path):
    fill_pool(connect_registry, 500)
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(_window_works())
    alerts_log = tmp_path / "alerts.log"
    resources = _dagster_resources(registry, store_path, alerts_log)
    window = dg.materialize(
        [identified_works], partition_key="2026-07-30-09:00", resources=resources
    )
    assert window.success
    late = work("sierra-system-number", "b-late", indexed_at=_stamp(7, 30))
    with SqliteWorksStore(store_path) as store:
        store.put_source([late])

    swept = dg.materialize([swept_works], resources=resources)
    assert swept.success
    [materialization] = swept.asset_materializations_for_node("swept_works")
    figures = {k: v.value for k, v in materialization.metadata.items()}
    assert figures["works_in_scope"] == 13
    assert (figures["works_found"], figures["works_missing"], figures["works_written"]) == (1, 1, 1)
    assert [w["work_id"] for w in figures["found_works"]] == [late.id]
    assert "Sweeper found 1 missing or stale work(s)" in alerts_log.read_text()

    again = dg.materialize([swept_works], resources=resources)
    [materialization] = again.asset_materializations_for_node("swept_works")
    assert materialization.metadata["works_found"].value == 0


def test_the_sweeper_schedule_is_off_by_default_and_asks_one_run_per_tick():
    assert sweep_missing_works.default_status is dg.DefaultScheduleStatus.STOPPED
    tick = datetime(2026, 7, 30, 10, 40, tzinfo=UTC)
    request = sweep_missing_works(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.run_key == tick.isoformat()


def test_the_works_freshness_policy_fails_after_three_windows():
    policy = identified_works.specs_by_key[identified_works.key].freshness_policy
    assert policy.fail_window.to_timedelta() == timedelta(minutes=3 * WINDOW_MINUTES)


def test_a_failed_sweep_run_is_alerted_and_not_retried_as_a_window(registry, tmp_path):
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(_window_works(3))
    alerts_log = tmp_path / "alerts.log"
    resources = _dagster_resources(registry, store_path, alerts_log)
    defs = dg.Definitions(assets=[swept_works], jobs=[sweep_works_job], resources=resources)
    with dg.DagsterInstance.ephemeral() as instance:
        # The pool is empty: minting the works found fails with PoolExhaustedError.
        result = defs.resolve_job_def("sweep_works").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)

        def context(with_resources=None):
            return dg.build_run_status_sensor_context(
                sensor_name="test",
                dagster_event=result.get_run_failure_event(),
                dagster_instance=instance,
                dagster_run=run,
                resources=with_resources,
            ).for_run_failure()

        skipped = recover_from_pool_exhaustion(context())
        assert isinstance(skipped, dg.SkipReason)
        assert works_run_failure_alert(context({"alerts": resources["alerts"]})) is None
    alert = json.loads(alerts_log.read_text().splitlines()[-1])
    assert alert["title"] == "Minting run failed: sweep_works"
    assert alert["cause"].startswith("PoolExhaustedError")
    assert "re-execute" in alert["what_to_do"]


class _OpensOnceResource(WorksStoreResource):
    """The store opens for minting; every later opening (the audit's) fails: it went away. A
    marker file counts, as Dagster builds the resource anew."""

    def open(self):
        marker = Path(self.sqlite_path).with_suffix(".opened")
        if marker.exists():
            raise WorksStoreError("cannot open the works store: gone")
        marker.touch()
        return SqliteWorksStore(self.sqlite_path)


def test_a_run_that_stops_raises_its_own_error_even_when_the_audit_cannot_run(
    registry, connect_registry, tmp_path
):
    store_path = tmp_path / "works.sqlite3"
    second_window = [
        work("sierra-system-number", f"c{n}", indexed_at=f"2026-07-30T09:2{n}:00.000Z")
        for n in range(5)
    ]
    with SqliteWorksStore(store_path) as store:
        store.put_source([*_window_works(), *second_window])
    fill_pool(connect_registry, 24)  # the first window's 12 works and 12 items, no more
    resources = _dagster_resources(registry, store_path, tmp_path / "alerts.log")
    resources["works_store"] = _OpensOnceResource(sqlite_path=str(store_path))
    defs = dg.Definitions(
        assets=[identified_works],
        jobs=[dg.define_asset_job("mint", selection=[identified_works])],
        resources=resources,
    )
    tags = {
        "dagster/asset_partition_range_start": "2026-07-30-09:00",
        "dagster/asset_partition_range_end": "2026-07-30-09:15",
    }
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("mint").execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        records = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "PoolExhaustedError" in str(failure.event_specific_data.error)
    # The window minted before the stop is recorded on its partition.
    assert [r.partition_key for r in records] == ["2026-07-30-09:00"]


def test_a_document_held_by_the_predecessor_of_its_chains_newest_record_is_the_difference(
    store, minter, connect_registry
):
    fill_pool(connect_registry, 500)
    sierra = work("sierra-system-number", "b1", indexed_at=_stamp(2))
    folio = work(
        "folio-instance", "f1", indexed_at=_stamp(3), predecessor=("sierra-system-number", "b1")
    )
    store.put_source([sierra, folio])
    assert WorksPipeline(store, minter).run(WINDOW).works_superseded == 1
    [canonical_id] = _canonical_ids(minter, [sierra.id])
    checked = {"inheritances": minter.inheritances}
    report = audit(store, minter.lookup_ids, WINDOW, **checked)
    assert (report.counts[Outcome.WRITTEN], report.counts[Outcome.SUPERSEDED]) == (1, 1)

    # The successor's write is lost and the predecessor's document is back under the ID.
    with sqlite3.connect(store.path) as db:
        db.execute(
            "UPDATE identified_works SET source_id = ?, document = ? WHERE canonical_id = ?",
            (sierra.id, json.dumps(sierra.document), canonical_id),
        )
    db.close()
    report = audit(store, minter.lookup_ids, WINDOW, **checked)
    [missing] = report.difference
    assert (missing.work_id, missing.outcome) == (folio.id, Outcome.MISSING)
    assert missing.detail == (
        f"held by {sierra.id}, but this work is the newest record of its chain"
    )
    # The predecessor's own document is what the store holds for it: written.
    assert report.counts[Outcome.WRITTEN] == 1 and report.in_scope == 2
    # Without the chains to check against, the holder's word is taken.
    assert audit(store, minter.lookup_ids, WINDOW).difference_count == 0
