"""The replenishment job: what the schedule, the pool sensor and recovery sensors launch."""

import dagster as dg

from idminter_pipeline.defs.pool.assets import canonical_id_pool

POOL_REPLENISHMENT_JOB_NAME = "pool_replenishment_job"
# dagster.yaml limits runs with this tag to one at a time (any value).
POOL_REPLENISHMENT_TAG = "idminter/pool-replenishment"

pool_replenishment_job = dg.define_asset_job(
    name=POOL_REPLENISHMENT_JOB_NAME,
    selection=dg.AssetSelection.assets(canonical_id_pool),
    tags={POOL_REPLENISHMENT_TAG: "true"},
    description="Tops the free-ID pool up to its target and runs the watermark checks.",
)


def replenishment_run_request(run_key: str | None, reason: str) -> dg.RunRequest:
    """A run request for the replenishment job (recovery sensors in other domains use this)."""
    return dg.RunRequest(
        run_key=run_key,
        job_name=POOL_REPLENISHMENT_JOB_NAME,
        tags={POOL_REPLENISHMENT_TAG: "true", "idminter/reason": reason},
    )
