"""Each window of a multi-window run on its own partition, as the Dagster instance records it:
figures, failed works, the blocking `no_failed_works` check, and runs that stop part-way.
Against the real registry and a real (SQLite) Dagster instance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster_helpers import WORKS_POOL, failure_context, works_resources
from db_helpers import fetch_all
from works_helpers import fill_pool, work

from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.defs.alerts.failures import failure_decision
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.works.assets import NO_FAILED_WORKS_CHECK, identified_works
from idminter_pipeline.defs.works.jobs import mint_works_by_id_job, mint_works_job
from idminter_pipeline.defs.works.partitions import schedule_settings_from_env
from idminter_pipeline.defs.works.runs import REPORTED_FAILURES
from idminter_pipeline.defs.works.sensors import works_run_failure_alert
from idminter_pipeline.works.stores import SqliteWorksStore

RANGE = {
    "dagster/asset_partition_range_start": "2026-07-30-09:00",
    "dagster/asset_partition_range_end": "2026-07-30-09:30",
}
WINDOWS = ["2026-07-30-09:00", "2026-07-30-09:15", "2026-07-30-09:30"]
ASSET = identified_works.key
CHECK = dg.AssetCheckKey(ASSET, NO_FAILED_WORKS_CHECK)
ORPHAN = "Work[folio-instance/orphan]"


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "works.sqlite3"


@pytest.fixture
def alerts_log(tmp_path) -> Path:
    return tmp_path / "alerts.log"


@pytest.fixture
def defs(registry, store_path, alerts_log) -> dg.Definitions:
    return dg.Definitions(
        assets=[identified_works],
        jobs=[mint_works_job, mint_works_by_id_job],
        sensors=[works_run_failure_alert],
        resources=works_resources(
            registry,
            store_path,
            alerts_log,
            id_pool=FreeIdPool.from_settings(WORKS_POOL),
        ),
    )


def _put(store_path: Path, works) -> None:
    with SqliteWorksStore(store_path) as store:
        store.put_source(works)


def _good(window_minute: str, count: int, prefix: str) -> list:
    """`count` works indexed one minute apart from 09:<window_minute>."""
    start = int(window_minute)
    return [
        work(
            "sierra-system-number", f"{prefix}{n}", indexed_at=f"2026-07-30T09:{start + n:02d}:00Z"
        )
        for n in range(count)
    ]


def _orphan(minute: str = "31", value: str = "orphan", missing: str = "b-missing"):
    return work(
        "folio-instance",
        value,
        indexed_at=f"2026-07-30T09:{minute}:00Z",
        predecessor=("sierra-system-number", missing),
    )


def _figures(instance, partition: str) -> dict:
    """The latest materialization of one partition, as the instance stored it."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[partition]), limit=1
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _check_status(instance) -> dict[str, AssetCheckExecutionRecordStatus]:
    infos = instance.event_log_storage.get_asset_check_partition_info([CHECK])
    return {info.partition_key: info.latest_execution_status for info in infos}


def _alerts(alerts_log: Path) -> list[dict]:
    if not alerts_log.exists():
        return []
    return [json.loads(line) for line in alerts_log.read_text().splitlines()]


def test_a_two_window_run_with_a_bad_work_gives_each_partition_its_own_figures_and_check(
    defs, instance, store_path, alerts_log, connect_registry
):
    fill_pool(connect_registry, 2_000)
    _put(store_path, [*_good("00", 5, "a"), *_good("30", 4, "c"), _orphan()])
    job = defs.resolve_job_def("mint_works")
    result = job.execute_in_process(instance=instance, tags=RANGE, raise_on_error=False)

    # Not green: the failed work fails the run (the blocking check), after everything is recorded.
    assert not result.success
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE
    first, empty, bad = (_figures(instance, window) for window in WINDOWS)
    assert (first["works_read"], first["works_written"], first["works_failed"]) == (5, 5, 0)
    assert (first["identifiers_minted"], first["identifiers_existing"]) == (5, 0)
    assert (empty["works_read"], empty["works_written"], empty["identifiers_found"]) == (0, 0, 0)
    assert (bad["works_read"], bad["works_written"], bad["works_failed"]) == (5, 4, 1)
    assert (bad["identifiers_minted"], bad["identifiers_inherited"]) == (4, 0)
    assert bad["failures_by_stage"]["mint"] == 1
    [row] = bad["failed_works"].records
    assert row.data["work_id"] == ORPHAN and row.data["stage"] == "mint"
    assert "Work[sierra-system-number/b-missing] is not in the registry" in row.data["reason"]
    assert bad["failed_works_listed"].startswith("All 1 failed work(s) are listed")
    assert first["failed_works"].records == []

    # Only the bad window's check failed, and the instance keeps it per partition.
    assert _check_status(instance) == {
        WINDOWS[0]: AssetCheckExecutionRecordStatus.SUCCEEDED,
        WINDOWS[1]: AssetCheckExecutionRecordStatus.SUCCEEDED,
        WINDOWS[2]: AssetCheckExecutionRecordStatus.FAILED,
    }
    [evaluation] = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert evaluation.partition == WINDOWS[2]
    assert evaluation.description.startswith("1 of 5 works failed in window 2026-07-30-09:30")
    assert evaluation.target_materialization_data.run_id == result.run_id

    # One alert, from the run itself, naming the run, the partition and the failed work.
    [alert] = _alerts(alerts_log)
    assert alert["title"] == "1 work(s) failed minting"
    assert (alert["run_id"], alert["partition"]) == (result.run_id, WINDOWS[2])
    assert alert["cause"].startswith(f"{ORPHAN} failed at stage mint: state.predecessorIdentifier")
    # The failure sensor knows the run already said so.
    skipped = failure_decision(works_run_failure_alert)(
        failure_context(instance, result, {"alerts": AlertsResource(log_file=str(alerts_log))}),
        AlertsResource(log_file=str(alerts_log)),
    )
    assert "alerted by the run itself" in skipped.skip_message
    assert len(_alerts(alerts_log)) == 1

    # A later good window does not flip the failed one back; a clean re-run of it does.
    again = job.execute_in_process(instance=instance, partition_key=WINDOWS[1])
    assert again.success
    assert _check_status(instance)[WINDOWS[2]] == AssetCheckExecutionRecordStatus.FAILED
    _put(store_path, [work("sierra-system-number", "b-missing", indexed_at="2026-07-30T09:32:00Z")])
    fixed = job.execute_in_process(instance=instance, partition_key=WINDOWS[2])
    assert fixed.success
    assert _check_status(instance)[WINDOWS[2]] == AssetCheckExecutionRecordStatus.SUCCEEDED
    refreshed = _figures(instance, WINDOWS[2])
    # b-missing, now registered, is superseded by the orphan that inherits from it.
    assert (refreshed["works_read"], refreshed["works_written"], refreshed["works_failed"]) == (
        6,
        5,
        0,
    )
    assert refreshed["works_superseded"] == 1
    assert (refreshed["identifiers_existing"], refreshed["identifiers_minted"]) == (4, 1)
    assert refreshed["identifiers_inherited"] == 1


def test_a_partition_lists_a_bounded_number_of_failed_works_and_the_logs_list_all(
    defs, instance, store_path, connect_registry
):
    fill_pool(connect_registry, 2_000)
    failing = REPORTED_FAILURES + 20
    _put(
        store_path,
        [_orphan(minute="31", value=f"orphan-{n:03d}", missing=f"b-{n}") for n in range(failing)],
    )
    result = defs.resolve_job_def("mint_works").execute_in_process(
        instance=instance, partition_key=WINDOWS[2], raise_on_error=False
    )
    assert not result.success
    figures = _figures(instance, WINDOWS[2])
    assert figures["works_failed"] == failing
    assert len(figures["failed_works"].records) == REPORTED_FAILURES
    assert figures["failed_works_listed"] == (
        f"The first {REPORTED_FAILURES} of {failing} failed works are listed; the logs of run "
        f"{result.run_id} list all of them."
    )
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    for n in range(failing):
        assert f"Work[folio-instance/orphan-{n:03d}]" in logged


def test_a_run_that_stops_part_way_records_the_windows_it_finished(
    defs, instance, store_path, registry, connect_registry
):
    job = defs.resolve_job_def("mint_works")
    fill_pool(connect_registry, 2_000)
    _put(store_path, _good("00", 3, "a"))
    assert job.execute_in_process(instance=instance, partition_key=WINDOWS[0]).success
    # The pool runs dry; the next window has new works to mint.
    with connect_registry() as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE canonical_ids SET Status = 'assigned' WHERE Status = 'free'")
        conn.commit()
    _put(store_path, _good("15", 2, "b"))
    tags = {**RANGE, "dagster/asset_partition_range_end": WINDOWS[1]}
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)

    assert not result.success
    # 09:00 finished (its works exist already) and is recorded on its partition by this run...
    recorded = instance.fetch_materializations(ASSET, limit=10).records
    assert [r.partition_key for r in recorded if r.run_id == result.run_id] == [WINDOWS[0]]
    first = _figures(instance, WINDOWS[0])
    assert (first["works_read"], first["identifiers_existing"]) == (3, 3)
    assert _check_status(instance)[WINDOWS[0]] == AssetCheckExecutionRecordStatus.SUCCEEDED
    # ...09:15 is not: nothing of it was written.
    assert not instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[WINDOWS[1]]), limit=1
    ).records
    written = "SELECT COUNT(*) FROM identifiers WHERE SourceId IN ('b0', 'b1')"
    assert fetch_all(registry, written) == [(0,)]


def test_a_launchpad_mistake_is_refused_before_a_run_exists(defs, instance, alerts_log):
    job = defs.resolve_job_def("mint_works_by_id")
    for config, named in (
        ({"source_identifiers": []}, "at least 1 item"),
        ({"source_identifiers": ["sierra-system-number/b1", "not an id"]}, "not an id"),
        ({"source_identifiers": ["sierra-system-number/b1"], "batch_size": 0}, "batch_size"),
    ):
        with pytest.raises(dg.DagsterError) as refused:
            job.execute_in_process(instance=instance, run_config=config)
        chain, error = [], refused.value
        while error is not None:
            chain.append(str(error))
            error = error.__cause__ or error.__context__
        assert any(named in text for text in chain), chain
    assert instance.get_runs() == []
    assert _alerts(alerts_log) == []


def test_a_window_run_with_a_batch_size_below_one_is_refused_at_launch(defs, instance):
    with pytest.raises(dg.DagsterInvalidConfigError, match="batch_size"):
        defs.resolve_job_def("mint_works").execute_in_process(
            instance=instance,
            partition_key=WINDOWS[0],
            run_config={"ops": {"identified_works": {"config": {"batch_size": 0}}}},
        )
    assert instance.get_runs() == []


def test_an_explicit_ids_run_with_a_failed_work_is_not_green(
    defs, instance, store_path, alerts_log, connect_registry
):
    fill_pool(connect_registry, 2_000)
    _put(store_path, [*_good("00", 2, "a"), _orphan()])
    config = {"source_identifiers": ["sierra-system-number/a0", "sierra-system-number/a1", ORPHAN]}
    result = defs.resolve_job_def("mint_works_by_id").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False
    )
    assert not result.success
    summary = result.output_for_node("mint_listed_works")
    assert (summary["works_written"], summary["works_failed"]) == (2, 1)
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.error.cls_name == "FailedWorksError"
    [alert] = _alerts(alerts_log)
    assert alert["run_id"] == result.run_id and ORPHAN in alert["cause"]
    skipped = failure_decision(works_run_failure_alert)(
        failure_context(instance, result, {"alerts": AlertsResource(log_file=str(alerts_log))}),
        AlertsResource(log_file=str(alerts_log)),
    )
    assert "alerted by the run itself" in skipped.skip_message


@pytest.mark.parametrize(
    ("elasticsearch_url", "kind", "described"),
    [(None, "sqlite", "embedded SQLite"), ("http://127.0.0.1:9", "elasticsearch", "Elasticsearch")],
)
@pytest.mark.slow(seconds=15)
def test_the_asset_says_which_works_store_the_deployment_uses(elasticsearch_url, kind, described):
    env = {k: v for k, v in os.environ.items() if k != "ELASTICSEARCH_URL"}
    if elasticsearch_url:
        env["ELASTICSEARCH_URL"] = elasticsearch_url
    script = (
        "import json, warnings; warnings.simplefilter('ignore');"
        "from idminter_pipeline.definitions import defs;"
        "spec = defs.resolve_assets_def('identified_works').specs_by_key;"
        "[s] = spec.values(); print(json.dumps([sorted(s.kinds), s.description]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    kinds, description = json.loads(output.strip().splitlines()[-1])
    other = ({"sqlite", "elasticsearch"} - {kind}).pop()
    assert kind in kinds and other not in kinds
    assert described in description


def _window_lines(instance, run_id: str) -> list[str]:
    return [
        record.event_log_entry.user_message
        for record in instance.get_records_for_run(run_id).records
        if record.event_log_entry.user_message.startswith("minting window")
    ]


def test_a_fast_multi_window_run_logs_its_first_and_last_window_and_each_slow_one(
    defs, instance, store_path, connect_registry, monkeypatch
):
    fill_pool(connect_registry, 2_000)
    _put(store_path, [*_good("00", 2, "a"), *_good("15", 2, "b"), *_good("30", 2, "c")])
    job = defs.resolve_job_def("mint_works")

    fast = job.execute_in_process(instance=instance, tags=RANGE)
    # Every log line is a stored event: the middle window of a quick run is not logged, but its
    # partition still has its own figures and check.
    assert fast.success
    lines = _window_lines(instance, fast.run_id)
    assert [line.split("): ")[0] + ")" for line in lines] == [
        f"minting window {WINDOWS[0]} (1 of 3)",
        f"minting window {WINDOWS[2]} (3 of 3)",
    ]
    assert lines[0].endswith(
        "indexed_at in [2026-07-30T09:00:00.000000Z, 2026-07-30T09:15:00.000000Z)"
    )
    assert _figures(instance, WINDOWS[1])["works_read"] == 2
    assert _check_status(instance)[WINDOWS[1]] == AssetCheckExecutionRecordStatus.SUCCEEDED

    # When windows take longer than the interval, each one is logged as it starts.
    monkeypatch.setattr("idminter_pipeline.defs.works.runs.PROGRESS_LOG_SECONDS", 0.0)
    slow = job.execute_in_process(instance=instance, tags=RANGE)
    assert [line.split(" (")[0] for line in _window_lines(instance, slow.run_id)] == [
        f"minting window {window}" for window in WINDOWS
    ]


def test_a_schedule_lag_that_is_not_whole_minutes_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("IDMINTER_WORKS_SCHEDULE_LAG_MINUTES", "5.5")
    monkeypatch.setenv("IDMINTER_WORKS_SCHEDULE_RUNNING", "true")
    with pytest.raises(InvalidSettingError) as refused:
        schedule_settings_from_env(
            "IDMINTER_WORKS_SCHEDULE_LAG_MINUTES", "IDMINTER_WORKS_SCHEDULE_RUNNING", 5
        )
    assert "IDMINTER_WORKS_SCHEDULE_LAG_MINUTES" in str(refused.value)
    assert "5.5" in str(refused.value)
    monkeypatch.setenv("IDMINTER_WORKS_SCHEDULE_LAG_MINUTES", " 7 ")
    assert schedule_settings_from_env(
        "IDMINTER_WORKS_SCHEDULE_LAG_MINUTES", "IDMINTER_WORKS_SCHEDULE_RUNNING", 5
    ) == (7, dg.DefaultScheduleStatus.RUNNING)
    monkeypatch.delenv("IDMINTER_WORKS_SCHEDULE_LAG_MINUTES")
    monkeypatch.setenv("IDMINTER_WORKS_SCHEDULE_RUNNING", "no")
    assert schedule_settings_from_env(
        "IDMINTER_WORKS_SCHEDULE_LAG_MINUTES", "IDMINTER_WORKS_SCHEDULE_RUNNING", 5
    ) == (5, dg.DefaultScheduleStatus.STOPPED)
