"""The free-ID pool as an asset: materializing it tops the pool up to the configured target."""

import dagster as dg
from pydantic import Field

from idminter_pipeline.defs.config import positive_int_field
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import REGISTRY_POOL, RegistryDatabase
from idminter_pipeline.defs.retries import retried_on_registry_outage
from idminter_pipeline.registry.pool import (
    MAX_BATCH_SIZE,
    PoolHealth,
    TopUpReport,
    pool_health,
    top_up,
)

POOL_GROUP = "pool"
# Defined by the legacy-migration work (registry_schema -> legacy_registry_migration -> pool):
# the pool must not be filled before legacy IDs are in canonical_ids, or fresh draws could
# collide with IDs the legacy copy has yet to insert.
LEGACY_MIGRATION_ASSET = "legacy_registry_migration"


class PoolTopUpConfig(dg.Config):
    """Launchpad overrides for one run; unset fields use the `id_pool` resource."""

    target_free: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)


# The launchpad's schema: a target or batch size below 1 is refused when the run is launched.
POOL_TOP_UP_CONFIG_SCHEMA = {
    "target_free": positive_int_field(
        None, "Free IDs the pool should hold afterwards (unset: the id_pool resource's)."
    ),
    "batch_size": positive_int_field(
        None,
        f"IDs per INSERT statement (unset: the id_pool resource's; clamped to {MAX_BATCH_SIZE:,}).",
    ),
}


def pool_metadata(report: TopUpReport, health: PoolHealth) -> dict[str, object]:
    """Plain ints and floats, so the Dagster UI plots them across materializations."""
    metadata: dict[str, object] = {
        "free": dg.MetadataValue.int(health.free),
        "assigned": dg.MetadataValue.int(health.assigned),
        "total": dg.MetadataValue.int(health.total),
        "ids_added": dg.MetadataValue.int(report.added),
        "duration_seconds": dg.MetadataValue.float(round(report.duration_seconds, 3)),
        "ids_per_second": dg.MetadataValue.float(round(report.ids_per_second, 1)),
        "duplicates_skipped": dg.MetadataValue.int(report.duplicates_skipped),
        "rounds": dg.MetadataValue.int(report.rounds),
        "target_free": dg.MetadataValue.int(report.target_free),
        "minted_last_hour": dg.MetadataValue.int(health.minted_last_hour),
        "minted_last_day": dg.MetadataValue.int(health.minted_last_day),
        "minted_last_week": dg.MetadataValue.int(health.minted_last_week),
        "forecast_rate_per_hour": dg.MetadataValue.float(round(health.forecast_rate_per_hour, 3)),
    }
    # The same definition as the sensor's observations (free / IDs minted in the last hour), so
    # one plot holds both; the busiest-rate forecast `idminter pool status` uses is kept apart.
    # Nothing minted means no forecast: leave the point out rather than plot a made-up number.
    last_hour = health.forecasts()["hour"]
    if last_hour is not None:
        metadata["hours_until_empty"] = dg.MetadataValue.float(round(last_hour, 2))
    busiest = health.hours_until_empty
    if busiest is not None and health.exhausted_at is not None:
        metadata["hours_until_empty_at_busiest_rate"] = dg.MetadataValue.float(round(busiest, 2))
        metadata["exhausted_at"] = dg.MetadataValue.text(health.exhausted_at.isoformat())
    return metadata


@dg.asset(
    metadata=release_metadata(),
    group_name=POOL_GROUP,
    deps=[LEGACY_MIGRATION_ASSET],
    pool=REGISTRY_POOL,
    kinds={"mysql"},
    description="Pre-generated free canonical IDs that minting claims (RFC 083).",
    config_schema=POOL_TOP_UP_CONFIG_SCHEMA,
)
def canonical_id_pool(
    context: dg.AssetExecutionContext, registry_database: RegistryDatabase, id_pool: FreeIdPool
) -> dg.MaterializeResult:
    """Tops the pool up to the target, then records the pool's health."""
    config = PoolTopUpConfig(**context.op_execution_context.op_config)
    settings = id_pool.settings()
    target = config.target_free if config.target_free is not None else settings.target_free
    batch_size = config.batch_size if config.batch_size is not None else settings.batch_size
    factory = registry_database.connection_factory()
    with retried_on_registry_outage():
        report = top_up(factory, target, batch_size=batch_size, max_rounds=settings.max_rounds)
        context.log.info(report.summary())
        health = pool_health(factory)
    return dg.MaterializeResult(metadata=pool_metadata(report, health))
