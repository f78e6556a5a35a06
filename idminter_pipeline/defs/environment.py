"""Every resource of the code location, its release and its run executor. Resources are built
from the environment when it loads (each domain's `*_from_env`); secrets reach them through
`EnvVar`, so the UI shows names, never values."""

import dagster as dg

from idminter_pipeline.defs.alerts.resources import alerts_from_env
from idminter_pipeline.defs.executor import RUN_EXECUTOR
from idminter_pipeline.defs.pool.resources import id_pool_from_env
from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import registry_database_from_env
from idminter_pipeline.defs.shadow.resources import shadow_reference_from_env
from idminter_pipeline.defs.works.resources import (
    churn_guard_from_env,
    downstream_from_env,
    impact_candidate_from_env,
    works_store_from_env,
)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "registry_database": registry_database_from_env(),
            "alerts": alerts_from_env(),
            "id_pool": id_pool_from_env(),
            "works_store": works_store_from_env(),
            "churn_guard": churn_guard_from_env(),
            "downstream": downstream_from_env(),
            "shadow_reference": shadow_reference_from_env(),
            "impact_candidate": impact_candidate_from_env(),
        },
        # Which release this code location runs, shown with the location in the UI.
        metadata=release_metadata(),
        executor=RUN_EXECUTOR,
    )
