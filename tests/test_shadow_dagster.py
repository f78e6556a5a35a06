"""`shadow_comparison` in Dagster: each window's categories on its own partition, a check
that fails exactly on the window holding an unexpected difference, and one alert naming it."""

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster_helpers import works_resources
from registry_invariants import registry_snapshot
from works_helpers import fill_pool

from idminter_pipeline.defs.shadow.assets import shadow_comparison
from idminter_pipeline.defs.shadow.resources import ShadowReferenceResource
from idminter_pipeline.defs.shadow.schedules import shadow_compare_lagged_window
from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import SqliteWorksStore

ALERT_TITLE = "Shadow comparison found unexpected differences"  # its runbook heading
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
WINDOWS = ["2026-07-30-09:00", "2026-07-30-09:15", "2026-07-30-09:30"]
CATEGORIES = ["agree", "differ_expected", "differ_unexpected", "not_in_reference", "would_mint"]


@pytest.fixture
def shadowed(registry, connect_registry, tmp_path):
    store_path = tmp_path / "works.sqlite3"
    works = list(generate_works(40, seed=11, spacing=timedelta(minutes=1)))
    with SqliteWorksStore(store_path) as store:
        store.put_source(works)
    fill_pool(connect_registry, 1_000)
    resources = works_resources(registry, store_path, tmp_path / "alerts.log")
    for window in WINDOWS:  # real minting builds the reference
        assert dg.materialize([identified_works], partition_key=window, resources=resources).success
    reference = tmp_path / "legacy.sqlite3"
    shutil.copyfile(store_path, reference)
    # One planted document difference, in a work of the 09:15 window (work 22, 09:22: a Sierra
    # work no successor names, so its own document is in the reference).
    planted = works[22].id
    with sqlite3.connect(reference) as db:
        canonical_id, text = db.execute(
            "SELECT canonical_id, document FROM identified_works WHERE source_id = ?", (planted,)
        ).fetchone()
        document = json.loads(text)
        document["version"] = 999
        db.execute(
            "UPDATE identified_works SET document = ? WHERE canonical_id = ?",
            (json.dumps(document), canonical_id),
        )
    db.close()
    resources["shadow_reference"] = ShadowReferenceResource(sqlite_path=str(reference))
    return resources, planted


def test_each_window_records_its_categories_and_the_check_fails_only_where_planted(
    shadowed, registry
):
    resources, planted = shadowed
    before = registry_snapshot(registry)
    defs = dg.Definitions(
        assets=[shadow_comparison],
        jobs=[dg.define_asset_job("shadow_job", selection=[shadow_comparison])],
        resources=resources,
    )
    tags = {RANGE_START: WINDOWS[0], RANGE_END: WINDOWS[-1]}
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("shadow_job").execute_in_process(instance=instance, tags=tags)
    assert result.success
    materializations = result.asset_materializations_for_node("shadow_comparison")
    assert sorted(m.partition for m in materializations) == WINDOWS
    figures = {m.partition: {k: v.value for k, v in m.metadata.items()} for m in materializations}
    assert sum(figures[w]["works_read"] for w in WINDOWS) == 40
    for window in WINDOWS:
        counted = sum(figures[window][c] for c in CATEGORIES)
        assert counted == figures[window]["works_read"]
        assert figures[window]["would_mint"] == 0
        assert figures[window]["differ_unexpected"] == (1 if window == WINDOWS[1] else 0)
    assert [d["work"] for d in figures[WINDOWS[1]]["unexpected_differences"]] == [planted]
    assert figures[WINDOWS[1]]["unexpected_differences"][0]["path"] == "version"

    checks = {c.partition: c for c in result.get_asset_check_evaluations()}
    assert sorted(checks) == WINDOWS
    assert {w: checks[w].passed for w in WINDOWS} == {
        WINDOWS[0]: True,
        WINDOWS[1]: False,
        WINDOWS[2]: True,
    }
    assert planted in checks[WINDOWS[1]].description
    assert registry_snapshot(registry) == before

    [alert] = _shadow_alerts(resources)
    assert (alert["run_id"], alert["partition"]) == (result.run_id, WINDOWS[1])
    assert alert["figures"]["differ_unexpected"] == 1
    assert alert["figures"]["windows_with_unexpected_differences"] == 1
    assert f"{planted} at version" in alert["what_happened"]
    assert alert["runbook"].endswith("#shadow-comparison-found-unexpected-differences")


def _shadow_alerts(resources) -> list[dict]:
    log = Path(resources["alerts"].log_file)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [a for a in map(json.loads, lines) if a["title"] == ALERT_TITLE]


def test_a_window_without_unexpected_differences_sends_no_alert(shadowed):
    resources, _ = shadowed
    result = dg.materialize([shadow_comparison], partition_key=WINDOWS[0], resources=resources)
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    assert _shadow_alerts(resources) == []


def test_without_a_reference_the_asset_fails_naming_the_setting(shadowed):
    resources, _ = shadowed
    resources["shadow_reference"] = ShadowReferenceResource()
    result = dg.materialize(
        [shadow_comparison], partition_key=WINDOWS[0], resources=resources, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("shadow_comparison")
    assert "IDMINTER_SHADOW_REFERENCE_PATH" in str(failure.error)


def test_the_schedule_compares_the_window_that_closed_the_lag_ago():
    # 15-minute windows, 30 minutes' lag: at 10:30 the cutoff is 10:00, so 09:45 is due.
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 8, 3, 10, 30, tzinfo=UTC)
    )
    request = shadow_compare_lagged_window(context)
    assert (request.partition_key, request.run_key) == ("2026-08-03-09:45", "2026-08-03-09:45")
    later = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 8, 3, 10, 44, tzinfo=UTC)
    )
    assert shadow_compare_lagged_window(later).partition_key == "2026-08-03-09:45"
    assert shadow_compare_lagged_window.job_name == "shadow_comparison_job"
    assert shadow_compare_lagged_window.default_status == dg.DefaultScheduleStatus.STOPPED
