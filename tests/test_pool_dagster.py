"""The pool's Dagster layer against the real registry: asset, checks, job, schedule, sensor."""

from datetime import datetime, timedelta

import dagster as dg
import pytest
from dagster_helpers import Ticks, logged_alerts
from db_helpers import fetch_all, run_statements

from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.errors import InvalidPoolSettingsError
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.checks import (
    free_pool_above_critical_watermark,
    free_pool_above_low_watermark,
)
from idminter_pipeline.defs.pool.jobs import (
    POOL_REPLENISHMENT_JOB_NAME,
    POOL_REPLENISHMENT_TAG,
    pool_replenishment_job,
)
from idminter_pipeline.defs.pool.resources import FreeIdPool, id_pool_from_env
from idminter_pipeline.defs.pool.schedules import (
    DEFAULT_REPLENISH_CRON,
    REPLENISH_CRON_ENV,
    build_pool_replenishment_schedule,
    pool_replenishment_schedule,
)
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.pool import PoolSettings, top_up

SETTINGS = PoolSettings(
    target_free=2_000,
    low_watermark=1_000,
    critical_watermark=200,
    batch_size=500,
    # Forecast alerts when the pool would last under 1.5 hours; the sensor counts IDs minted
    # in the last hour up to ceil(2,000 / 1.5) = 1,334.
    forecast_horizon_hours=1.5,
)
# Draining the pool the way a minter does stamps AssignedAt, so these tests would also see the
# forecast alert; a zero horizon turns the forecast off to isolate the watermark behaviour.
NO_FORECAST = FreeIdPool.from_settings(
    PoolSettings(**{**SETTINGS.as_dict(), "forecast_horizon_hours": 0})
)


@pytest.fixture
def alerts_log(tmp_path):
    return tmp_path / "alerts.log"


@pytest.fixture
def resources(registry, alerts_log):
    return {
        "registry_database": RegistryDatabase.from_settings(registry),
        "id_pool": FreeIdPool.from_settings(SETTINGS),
        "alerts": AlertsResource(log_file=str(alerts_log)),
    }


def _fill(registry, free: int) -> None:
    top_up(lambda: connect(registry), free, batch_size=1_000)


def _assign_recently(registry, count: int, minutes_ago: int = 10) -> None:
    conn = connect(registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT NOW(6)")
            (now,) = cursor.fetchone()
            cursor.executemany(
                "INSERT IGNORE INTO canonical_ids (CanonicalId, Status, AssignedAt)"
                " VALUES (%s, %s, %s)",
                [
                    (v, "assigned", now - timedelta(minutes=minutes_ago))
                    for v in generate_canonical_ids_bulk(count)
                ],
            )
        conn.commit()
    finally:
        conn.close()


def _drain_to(registry, free: int) -> None:
    """Assign free IDs as a minter would, until `free` remain."""
    [(current,)] = fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")
    run_statements(
        registry,
        (
            "UPDATE canonical_ids SET Status = 'assigned' WHERE Status = 'free' LIMIT %s",
            (max(0, current - free),),
        ),
    )


# --- asset and checks -------------------------------------------------------------------------


def _check_results(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_materializing_the_pool_tops_it_up_and_records_plottable_metadata(registry, resources):
    pool_defs = [
        canonical_id_pool,
        free_pool_above_low_watermark,
        free_pool_above_critical_watermark,
    ]
    result = dg.materialize(pool_defs, resources=resources)
    assert result.success
    [materialization] = result.asset_materializations_for_node("canonical_id_pool")
    metadata = materialization.metadata
    assert metadata["free"].value == 2_000
    assert metadata["ids_added"].value == 2_000
    assert isinstance(metadata["ids_added"], dg.IntMetadataValue)
    assert isinstance(metadata["duration_seconds"], dg.FloatMetadataValue)
    assert metadata["duration_seconds"].value > 0
    assert "hours_until_empty" not in metadata  # nothing minted yet: no forecast point
    assert fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'") == [
        (2_000,)
    ]
    checks = _check_results(result)
    assert checks["free_pool_above_low_watermark"].passed
    assert checks["free_pool_above_critical_watermark"].passed

    # A minter claims 500 IDs (its plain UPDATE stamps AssignedAt): the next materialization
    # refills them and records the forecast at 500 IDs/hour.
    _drain_to(registry, 1_500)
    again = dg.materialize(pool_defs, resources=resources)
    metadata = again.asset_materializations_for_node("canonical_id_pool")[0].metadata
    assert metadata["ids_added"].value == 500
    assert metadata["free"].value == 2_000
    assert metadata["minted_last_hour"].value == 500
    assert metadata["hours_until_empty"].value == pytest.approx(4.0)
    assert isinstance(metadata["hours_until_empty"], dg.FloatMetadataValue)


def test_checks_fail_with_their_severities_below_the_watermarks(registry, resources):
    pool_defs = [
        canonical_id_pool,
        free_pool_above_low_watermark,
        free_pool_above_critical_watermark,
    ]
    # A run configured to fill only to 500: below low (1,000), above critical (200).
    config = {"ops": {"canonical_id_pool": {"config": {"target_free": 500}}}}
    result = dg.materialize(pool_defs, resources=resources, run_config=config)
    assert result.success
    checks = _check_results(result)
    low, critical = (
        checks["free_pool_above_low_watermark"],
        checks["free_pool_above_critical_watermark"],
    )
    assert not low.passed
    assert low.severity == dg.AssetCheckSeverity.WARN
    assert low.metadata["free_at_least"].value == 500
    assert critical.passed

    _drain_to(registry, 100)
    result = dg.materialize(
        pool_defs,
        resources=resources,
        run_config={"ops": {"canonical_id_pool": {"config": {"target_free": 100}}}},
    )
    critical = _check_results(result)["free_pool_above_critical_watermark"]
    assert not critical.passed
    assert critical.severity == dg.AssetCheckSeverity.ERROR
    assert critical.metadata["free_at_least"].value == 100


def test_the_replenishment_job_runs_with_its_concurrency_tag(registry, resources):
    defs = dg.Definitions(
        assets=[canonical_id_pool],
        asset_checks=[free_pool_above_low_watermark, free_pool_above_critical_watermark],
        jobs=[pool_replenishment_job],
        resources=resources,
    )
    job = defs.resolve_job_def(POOL_REPLENISHMENT_JOB_NAME)
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags[POOL_REPLENISHMENT_TAG] == "true"
    assert fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'") == [
        (2_000,)
    ]
    # The job carries the watermark checks along with the asset.
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {
        "free_pool_above_low_watermark",
        "free_pool_above_critical_watermark",
    }


# --- schedule -----------------------------------------------------------------------------------


def test_the_schedule_requests_a_replenishment_run_on_weekday_mornings():
    assert pool_replenishment_schedule.cron_schedule == DEFAULT_REPLENISH_CRON
    assert pool_replenishment_schedule.job_name == POOL_REPLENISHMENT_JOB_NAME
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 6, 0))
    data = pool_replenishment_schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert request.tags["idminter/reason"] == "schedule"


def test_the_schedule_cron_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(REPLENISH_CRON_ENV, "30 4 * * *")
    schedule = build_pool_replenishment_schedule()
    assert schedule.cron_schedule == "30 4 * * *"


# --- sensor -------------------------------------------------------------------------------------


def test_a_drained_pool_requests_one_run_and_sends_one_alert_across_ticks(
    registry, resources, alerts_log
):
    _fill(registry, 600)  # below low (1,000), above critical (200)
    ticks = Ticks(resources)
    results = [ticks.tick() for _ in range(4)]
    requests = [request for result in results for request in result.run_requests or []]
    assert len(requests) == 1
    [request] = requests
    assert request.run_key == "pool-low-water-1"
    assert request.job_name == POOL_REPLENISHMENT_JOB_NAME
    assert request.tags[POOL_REPLENISHMENT_TAG] == "true"
    [alert] = logged_alerts(alerts_log)
    assert alert["severity"] == "warning"
    assert alert["figures"]["free"] == 600
    assert alert["figures"]["low_watermark"] == 1_000
    assert "pool-low-water-1" in alert["what_to_do"]
    assert "idminter pool top-up --target 2000" in alert["what_to_do"]


def test_a_healthy_pool_skips(registry, resources, alerts_log):
    _fill(registry, 1_500)
    ticks = Ticks(resources)
    for _ in range(3):
        result = ticks.tick()
        assert not result.run_requests
        assert "more than 1,000 free IDs" in str(result.skip_reason)
    assert logged_alerts(alerts_log) == []


def test_each_low_water_episode_gets_its_own_run(registry, resources, alerts_log):
    _fill(registry, 500)
    ticks = Ticks({**resources, "id_pool": NO_FORECAST})
    assert [r.run_key for r in ticks.tick().run_requests] == ["pool-low-water-1"]
    assert not ticks.tick().run_requests
    _fill(registry, 2_000)  # the replenishment ran
    assert not ticks.tick().run_requests
    _drain_to(registry, 900)
    assert [r.run_key for r in ticks.tick().run_requests] == ["pool-low-water-2"]
    assert not ticks.tick().run_requests
    assert [a["severity"] for a in logged_alerts(alerts_log)] == ["warning", "warning"]


def test_below_critical_alerts_with_higher_severity_once(registry, resources, alerts_log):
    _fill(registry, 500)
    ticks = Ticks({**resources, "id_pool": NO_FORECAST})
    assert len(ticks.tick().run_requests) == 1
    _drain_to(registry, 150)  # the run has not refilled it yet
    for _ in range(3):
        assert not ticks.tick().run_requests  # same episode: no second run
    assert [a["severity"] for a in logged_alerts(alerts_log)] == ["warning", "critical"]
    critical = logged_alerts(alerts_log)[1]
    assert critical["figures"]["free"] == 150
    assert critical["figures"]["critical_watermark"] == 200


def test_a_minting_burst_alerts_both_watermark_and_forecast(registry, resources, alerts_log):
    _fill(registry, 2_000)
    ticks = Ticks(resources)
    assert not ticks.tick().run_requests
    _drain_to(registry, 950)  # 1,050 claimed in minutes: below low, empty in under an hour
    assert len(ticks.tick().run_requests) == 1
    assert not ticks.tick().run_requests
    alerts = logged_alerts(alerts_log)
    assert [(a["severity"], a["title"]) for a in alerts] == [
        ("warning", "Free-ID pool below low watermark"),
        ("critical", "Free-ID pool forecast to run out within 1.5 hours"),
    ]
    assert alerts[1]["figures"]["minted_last_hour"] == 1_050
    assert alerts[1]["figures"]["hours_until_empty"] == round(950 / 1_050, 2)


def test_a_pool_forecast_to_empty_within_the_horizon_alerts_critical(
    registry, resources, alerts_log
):
    _fill(registry, 1_500)  # above the low watermark
    _assign_recently(registry, 1_200)  # 1,200/hour: 1,500 free last 1.25 hours
    ticks = Ticks(resources)
    results = [ticks.tick() for _ in range(3)]
    assert not any(result.run_requests for result in results)
    [alert] = logged_alerts(alerts_log)
    assert alert["severity"] == "critical"
    assert "run out within 1.5 hours" in alert["title"]
    assert alert["figures"]["hours_until_empty"] == 1.25
    assert alert["figures"]["minted_last_hour"] == 1_200
    assert "1,200 IDs/hour" in alert["what_happened"]


def test_a_mint_rate_beyond_the_count_cap_still_forecasts(registry, resources, alerts_log):
    _fill(registry, 1_500)
    _assign_recently(registry, 1_800)  # more than the 1,334 the sensor counts
    ticks = Ticks(resources)
    for _ in range(3):
        ticks.tick()
    [alert] = logged_alerts(alerts_log)
    assert alert["severity"] == "critical"
    assert alert["figures"]["minted_last_hour"] == "more than 1334"
    assert alert["figures"]["hours_until_empty"].startswith("less than ")
    assert "more than 1,334 IDs/hour" in alert["what_happened"]


def test_an_undelivered_alert_is_retried_on_the_next_tick(registry, resources, tmp_path):
    _fill(registry, 600)
    ticks = Ticks(resources)
    broken = AlertsResource(log_file=str(tmp_path))  # a directory: the log-file channel fails
    first = ticks.tick(alerts=broken)
    assert len(first.run_requests) == 1  # the run goes out even though the alert did not
    working_log = tmp_path / "later" / "alerts.log"
    working = AlertsResource(log_file=str(working_log))
    assert not ticks.tick(alerts=working).run_requests
    assert not ticks.tick(alerts=working).run_requests
    assert len(logged_alerts(working_log)) == 1


def test_the_sensor_skips_with_a_clear_reason_before_the_schema_exists(empty_database, alerts_log):
    ticks = Ticks(
        {
            "registry_database": RegistryDatabase.from_settings(empty_database),
            "id_pool": FreeIdPool.from_settings(SETTINGS),
            "alerts": AlertsResource(log_file=str(alerts_log)),
        }
    )
    result = ticks.tick()
    assert not result.run_requests
    assert "idminter db migrate" in str(result.skip_reason)


# --- configuration ------------------------------------------------------------------------------


def test_pool_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("IDMINTER_POOL_TARGET_FREE", "5000")
    monkeypatch.setenv("IDMINTER_POOL_LOW_WATERMARK", "1000")
    monkeypatch.setenv("IDMINTER_POOL_CRITICAL_WATERMARK", "10")
    monkeypatch.setenv("IDMINTER_POOL_FORECAST_HORIZON_HOURS", "6.5")
    settings = id_pool_from_env().settings()
    assert (settings.target_free, settings.low_watermark, settings.critical_watermark) == (
        5000,
        1000,
        10,
    )
    assert settings.forecast_horizon_hours == 6.5


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"low_watermark": 3_000}, "low_watermark=3000"),
        ({"critical_watermark": 1_500}, "critical_watermark=1500"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"forecast_horizon_hours": -1.0}, "forecast_horizon_hours=-1.0"),
    ],
)
def test_contradictory_pool_settings_are_refused_naming_them(kwargs, named):
    with pytest.raises(InvalidPoolSettingsError, match=named):
        PoolSettings(**{**SETTINGS.as_dict(), **kwargs})


def test_a_non_numeric_environment_value_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("IDMINTER_POOL_TARGET_FREE", "lots")
    with pytest.raises(InvalidPoolSettingsError, match="IDMINTER_POOL_TARGET_FREE='lots'"):
        PoolSettings.from_env()
