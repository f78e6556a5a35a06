"""Is the free pool above its watermarks? Each check is one bounded, index-only count."""

import dagster as dg

from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry.pool import count_free_up_to


def _watermark_check(
    registry_database: RegistryDatabase,
    watermark: int,
    name: str,
    severity: dg.AssetCheckSeverity,
) -> dg.AssetCheckResult:
    conn = registry_database.connect()
    try:
        # Reading watermark + 1 entries is enough to know whether the pool is at or above it.
        free = count_free_up_to(conn, watermark + 1)
    finally:
        conn.close()
    passed = free >= watermark
    shown = f"{free:,}" if free <= watermark else f"more than {watermark:,}"
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=(
            f"{shown} free IDs; the {name} watermark is {watermark:,}"
            + ("" if passed else ": top the pool up (materialize canonical_id_pool)")
        ),
        metadata={
            "free_at_least": dg.MetadataValue.int(free),
            "watermark": dg.MetadataValue.int(watermark),
        },
    )


@dg.asset_check(asset=canonical_id_pool, description="Warns when the pool is below its low mark.")
def free_pool_above_low_watermark(
    registry_database: RegistryDatabase, id_pool: FreeIdPool
) -> dg.AssetCheckResult:
    return _watermark_check(
        registry_database, id_pool.settings().low_watermark, "low", dg.AssetCheckSeverity.WARN
    )


@dg.asset_check(
    asset=canonical_id_pool, description="Errors when the pool is below its critical mark."
)
def free_pool_above_critical_watermark(
    registry_database: RegistryDatabase, id_pool: FreeIdPool
) -> dg.AssetCheckResult:
    return _watermark_check(
        registry_database,
        id_pool.settings().critical_watermark,
        "critical",
        dg.AssetCheckSeverity.ERROR,
    )
