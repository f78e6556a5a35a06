"""The pool's tuning, as a resource so runs, checks and the sensor read the same figures.

Defaults come from the environment (`IDMINTER_POOL_*`, see `PoolSettings.from_env` and
docs/configuration.md); they can be overridden per deployment in the resource config.
"""

import dagster as dg

from idminter_pipeline.registry.pool import PoolSettings


class FreeIdPool(dg.ConfigurableResource):
    """Pool target, watermarks, batch size and forecast horizon (resource key `id_pool`)."""

    target_free: int
    low_watermark: int
    critical_watermark: int
    batch_size: int
    max_rounds: int
    forecast_horizon_hours: float

    def settings(self) -> PoolSettings:
        # PoolSettings validates: watermarks that contradict each other fail here, named.
        return PoolSettings(
            target_free=self.target_free,
            low_watermark=self.low_watermark,
            critical_watermark=self.critical_watermark,
            batch_size=self.batch_size,
            max_rounds=self.max_rounds,
            forecast_horizon_hours=self.forecast_horizon_hours,
        )

    @classmethod
    def from_settings(cls, settings: PoolSettings) -> "FreeIdPool":
        return cls(**settings.as_dict())  # type: ignore[arg-type]


def id_pool_from_env() -> FreeIdPool:
    return FreeIdPool.from_settings(PoolSettings.from_env())
