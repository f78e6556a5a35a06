"""What `pool_size_sensor` records on `canonical_id_pool`, tick after tick, against the real
registry: observations with the true counts and watermark check evaluations, read back from a
real Dagster instance."""

import dagster as dg
import pytest
from test_pool_dagster import SETTINGS, _assign_recently, _drain_to, _fill

from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.checks import CRITICAL_WATERMARK_CHECK, LOW_WATERMARK_CHECK
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.pool.sensors import pool_size_sensor
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry.pool import PoolSettings

# Without a forecast horizon the sensor counts free IDs up to the low watermark (1,000).
NO_FORECAST = PoolSettings(**{**SETTINGS.as_dict(), "forecast_horizon_hours": 0})


class Daemon:
    """Ticks the sensor and stores what it returns the way Dagster's sensor daemon does: each of
    the tick's `asset_events` through `instance.report_runless_asset_event`."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict) -> None:
        self.instance = instance
        self.resources = resources
        self.cursor = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources
        )
        data = pool_size_sensor.evaluate_tick(context)
        for event in data.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = data.cursor
        return data


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _resources(registry, tmp_path, settings: PoolSettings) -> dict:
    return {
        "registry_database": RegistryDatabase.from_settings(registry),
        "id_pool": FreeIdPool.from_settings(settings),
        "alerts": AlertsResource(log_file=str(tmp_path / "alerts.log")),
    }


def _observations(instance) -> list[dict]:
    """Every observation of the pool, oldest first, as {label: value}."""
    records = instance.fetch_observations(canonical_id_pool.key, limit=100, ascending=True).records
    return [
        {label: entry.value for label, entry in r.asset_observation.metadata.items()}
        for r in records
    ]


def _evaluations(instance, check_name: str) -> list[dg.AssetCheckEvaluation]:
    """Every recorded evaluation of the check, oldest first."""
    key = dg.AssetCheckKey(canonical_id_pool.key, check_name)
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    return [r.event.dagster_event.event_specific_data for r in reversed(history)]


def test_ticks_on_a_draining_pool_record_true_counts_and_check_results(
    registry, tmp_path, instance
):
    daemon = Daemon(instance, _resources(registry, tmp_path, NO_FORECAST))
    _fill(registry, 1_500)
    daemon.tick()  # above the sensor's cap (the low watermark, 1,000)
    _drain_to(registry, 900)  # 600 claimed as a minter claims them
    daemon.tick()
    _drain_to(registry, 150)  # below the critical watermark (200)
    daemon.tick()
    _drain_to(registry, 0)
    daemon.tick()
    _fill(registry, 2_000)  # the replenishment ran
    daemon.tick()

    observations = _observations(instance)
    assert len(observations) == 5  # one per tick
    assert [o["free"] for o in observations] == [
        "more than 1,000 (the sensor's cap)",
        900,
        150,
        0,
        "more than 1,000 (the sensor's cap)",
    ]
    assert [o["minted_last_hour"] for o in observations] == [0, 600, 1_350, 1_500, 1_500]
    assert observations[0]["hours_until_empty"] == "no forecast: nothing minted in the last hour"
    assert observations[1]["hours_until_empty"] == 1.5  # 900 free at 600 an hour
    assert observations[2]["hours_until_empty"] == pytest.approx(150 / 1_350, abs=0.01)
    assert observations[3]["hours_until_empty"] == 0.0
    assert observations[4]["hours_until_empty"] == "more than 0.67"  # 1,000+ at 1,500 an hour

    low = _evaluations(instance, LOW_WATERMARK_CHECK)
    critical = _evaluations(instance, CRITICAL_WATERMARK_CHECK)
    assert [e.passed for e in low] == [True, False, False, False, True]
    assert [e.passed for e in critical] == [True, True, False, False, True]
    assert {e.severity for e in low} == {dg.AssetCheckSeverity.WARN}
    assert {e.severity for e in critical} == {dg.AssetCheckSeverity.ERROR}
    assert low[1].description == (
        "900 free IDs; the low watermark is 1,000: top the pool up (materialize canonical_id_pool)"
    )
    assert critical[3].metadata["free_at_least"].value == 0
    assert low[4].description == "more than 1,000 free IDs; the low watermark is 1,000"
    # What the asset page shows as the checks' current state: failing while drained, then fixed.
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(canonical_id_pool.key, CRITICAL_WATERMARK_CHECK)]
    )
    [record] = latest.values()
    assert record.event.dagster_event.event_specific_data.passed


def test_a_mint_rate_above_the_cap_is_recorded_as_a_bound_not_a_level(registry, tmp_path, instance):
    daemon = Daemon(instance, _resources(registry, tmp_path, SETTINGS))
    _fill(registry, 900)
    _assign_recently(registry, 1_800)  # more than the 1,334 an hour the sensor counts
    daemon.tick()
    [observation] = _observations(instance)
    assert observation["free"] == 900
    assert observation["minted_last_hour"] == "more than 1,334 (the sensor's cap)"
    # More were minted than counted, so the pool empties sooner than 900 / 1,335 hours.
    assert observation["hours_until_empty"] == f"less than {900 / 1_335:,.2f}"
    assert observation["counted_up_to"] == "1,000 free IDs, 1,334 minted in the last hour"
    [low] = _evaluations(instance, LOW_WATERMARK_CHECK)
    assert not low.passed


def test_numbers_are_recorded_only_where_exact_so_plots_show_true_levels(
    registry, tmp_path, instance
):
    daemon = Daemon(instance, _resources(registry, tmp_path, NO_FORECAST))
    _fill(registry, 5_000)
    daemon.tick()
    _drain_to(registry, 700)
    daemon.tick()
    records = instance.fetch_observations(canonical_id_pool.key, limit=10, ascending=True).records
    capped, exact = (r.asset_observation.metadata["free"] for r in records)
    # The UI plots int and float entries only: the capped tick leaves a gap, not a fake level.
    assert isinstance(capped, dg.TextMetadataValue)
    assert isinstance(exact, dg.IntMetadataValue) and exact.value == 700
