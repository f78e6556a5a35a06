"""The works pipeline in Dagster: `identified_works` partitioned by `indexed_at` windows, the
explicit-ids job, the schedule, the failure sensors and the pool-exhaustion recovery."""

import dagster as dg

from idminter_pipeline.defs.works.resources import (
    churn_guard_from_env,
    downstream_from_env,
    works_store_from_env,
)


@dg.definitions
def resources() -> dg.Definitions:
    """The domain's resources, read from the environment when the code location loads (its
    assets, checks, jobs, schedules and sensors are found in its modules)."""
    return dg.Definitions(
        resources={
            "works_store": works_store_from_env(),
            "churn_guard": churn_guard_from_env(),
            "downstream": downstream_from_env(),
        }
    )
