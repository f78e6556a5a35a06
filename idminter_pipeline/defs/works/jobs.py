"""Jobs of the works pipeline."""

import dagster as dg

from idminter_pipeline.defs.works.assets import (
    POOL_ASSET,
    candidate_impact,
    identified_works,
    swept_works,
)
from idminter_pipeline.defs.works.ops import listed_works_config, mint_listed_works, replenish_pool

MINT_WORKS_JOB = "mint_works"
MINT_WORKS_BY_ID_JOB = "mint_works_by_id"
REPLENISH_AND_MINT_WORKS_JOB = "replenish_and_mint_works"
REPLENISH_AND_MINT_WORKS_BY_ID_JOB = "replenish_and_mint_works_by_id"
SWEEP_WORKS_JOB = "sweep_works"
ASSESS_CANDIDATE_IMPACT_JOB = "assess_candidate_impact"

mint_works_job = dg.define_asset_job(
    MINT_WORKS_JOB,
    selection=dg.AssetSelection.assets(identified_works),
    description="Mint the works of one indexed_at window (the schedule runs it).",
)

sweep_works_job = dg.define_asset_job(
    SWEEP_WORKS_JOB,
    selection=dg.AssetSelection.assets(swept_works),
    description="Mint the works whose identified document is missing or older than their source.",
)

assess_candidate_impact_job = dg.define_asset_job(
    ASSESS_CANDIDATE_IMPACT_JOB,
    selection=dg.AssetSelection.assets(candidate_impact),
    description="Assess a reindex candidate's identity impact before it is promoted.",
)

# The recovery for a window run that found the pool empty: top the pool up, then mint again.
replenish_and_mint_works_job = dg.define_asset_job(
    REPLENISH_AND_MINT_WORKS_JOB,
    selection=dg.AssetSelection.assets(POOL_ASSET, identified_works),
    description="Replenish the free-ID pool, then mint the window again.",
)


# Both explicit-ids jobs take the same run config (`source_identifiers`, `job_id`,
# `batch_size`), so the pool-exhaustion recovery passes a failed run's config on unchanged.
@dg.job(
    name=MINT_WORKS_BY_ID_JOB,
    config=listed_works_config,
    description="Mint the works listed in run config.",
)
def mint_works_by_id_job() -> None:
    mint_listed_works()


@dg.job(
    name=REPLENISH_AND_MINT_WORKS_BY_ID_JOB,
    config=listed_works_config,
    description="Replenish the free-ID pool, then mint the listed works again.",
)
def replenish_and_mint_works_by_id_job() -> None:
    mint_listed_works(after=replenish_pool())
