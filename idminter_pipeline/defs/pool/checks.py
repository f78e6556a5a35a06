"""Is the free pool above its watermarks?

The checks run with every replenishment (one bounded, index-only count each), and
`pool_size_sensor` records an evaluation of both on every tick from the count it already made, so
the checks follow the real level between top-ups and a drained pool shows failing checks until it
is refilled. Both paths build their result with `watermark_outcome`, so they read the same.
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.registry.pool import count_free_up_to

LOW_WATERMARK_CHECK = "free_pool_above_low_watermark"
CRITICAL_WATERMARK_CHECK = "free_pool_above_critical_watermark"


@dataclass(frozen=True)
class WatermarkOutcome:
    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str
    metadata: dict[str, object]

    def _outcome(self, **metadata: object) -> dict[str, Any]:
        """What a check result and an evaluation both say, with `metadata` added."""
        return {
            "check_name": self.check_name,
            "passed": self.passed,
            "severity": self.severity,
            "description": self.description,
            "metadata": {**self.metadata, **metadata},
        }

    def result(self) -> dg.AssetCheckResult:
        """For the asset checks that run with a replenishment."""
        return dg.AssetCheckResult(**self._outcome())

    def evaluation(self, *, source: str) -> dg.AssetCheckEvaluation:
        """For the sensor, which records evaluations outside any run."""
        return dg.AssetCheckEvaluation(
            asset_key=canonical_id_pool.key,
            **self._outcome(evaluated_by=dg.MetadataValue.text(source)),
        )


def watermark_outcome(
    *, free: int, free_is_exact: bool, watermark: int, level: str
) -> WatermarkOutcome:
    """`free` is exact, or (when not) a lower bound that is already above the watermark."""
    passed = not free_is_exact or free >= watermark
    shown = f"{free:,}" if free_is_exact and free <= watermark else f"more than {watermark:,}"
    low = level == "low"
    return WatermarkOutcome(
        check_name=LOW_WATERMARK_CHECK if low else CRITICAL_WATERMARK_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN if low else dg.AssetCheckSeverity.ERROR,
        description=(
            f"{shown} free IDs; the {level} watermark is {watermark:,}"
            + ("" if passed else ": top the pool up (materialize canonical_id_pool)")
        ),
        metadata={
            # Exact, or the count where it stopped: a lower bound either way.
            "free_at_least": dg.MetadataValue.int(free),
            "watermark": dg.MetadataValue.int(watermark),
        },
    )


def _watermark_check(
    registry_database: RegistryDatabase, watermark: int, level: str
) -> dg.AssetCheckResult:
    def count() -> int:
        conn = registry_database.connect()
        try:
            # Reading watermark + 1 entries is enough to know whether the pool is at or above it.
            return count_free_up_to(conn, watermark + 1)
        finally:
            conn.close()

    # A read on a connection of its own: ridden out like every registry connection.
    free = ride_out(count, what=f"checking the pool's {level} watermark")
    return watermark_outcome(
        free=free, free_is_exact=free <= watermark, watermark=watermark, level=level
    ).result()


@dg.asset_check(
    asset=canonical_id_pool,
    name=LOW_WATERMARK_CHECK,
    description="Warns when the pool is below its low mark (also evaluated by pool_size_sensor).",
)
def free_pool_above_low_watermark(
    registry_database: RegistryDatabase, id_pool: FreeIdPool
) -> dg.AssetCheckResult:
    return _watermark_check(registry_database, id_pool.settings().low_watermark, "low")


@dg.asset_check(
    asset=canonical_id_pool,
    name=CRITICAL_WATERMARK_CHECK,
    description=(
        "Errors when the pool is below its critical mark (also evaluated by pool_size_sensor)."
    ),
)
def free_pool_above_critical_watermark(
    registry_database: RegistryDatabase, id_pool: FreeIdPool
) -> dg.AssetCheckResult:
    return _watermark_check(registry_database, id_pool.settings().critical_watermark, "critical")
