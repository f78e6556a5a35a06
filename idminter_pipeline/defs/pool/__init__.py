"""The free-ID pool in Dagster: `canonical_id_pool`, its watermark checks, the replenishment job
and schedule, the pool sensor and the replenishment failure alert; the `id_pool` resource."""

import dagster as dg

from idminter_pipeline.defs.pool.resources import id_pool_from_env


@dg.definitions
def resources() -> dg.Definitions:
    """The domain's resources, read from the environment when the code location loads (its
    assets, checks, jobs, schedules and sensors are found in its modules)."""
    return dg.Definitions(
        resources={
            "id_pool": id_pool_from_env(),
        }
    )
