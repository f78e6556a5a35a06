import dagster as dg

from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.checks import (
    free_pool_above_critical_watermark,
    free_pool_above_low_watermark,
)
from idminter_pipeline.defs.pool.jobs import pool_replenishment_job
from idminter_pipeline.defs.pool.resources import id_pool_from_env
from idminter_pipeline.defs.pool.schedules import pool_replenishment_schedule
from idminter_pipeline.defs.pool.sensors import (
    pool_replenishment_failure_alert,
    pool_size_sensor,
)

defs = dg.Definitions(
    assets=[canonical_id_pool],
    asset_checks=[free_pool_above_low_watermark, free_pool_above_critical_watermark],
    jobs=[pool_replenishment_job],
    schedules=[pool_replenishment_schedule],
    sensors=[pool_size_sensor, pool_replenishment_failure_alert],
    resources={"id_pool": id_pool_from_env()},
)
