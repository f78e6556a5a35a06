"""The shadow comparison's job: one window (the schedule's), or a range (a backfill)."""

import dagster as dg

from idminter_pipeline.defs.shadow.assets import shadow_comparison

SHADOW_COMPARISON_JOB = "shadow_comparison_job"

shadow_comparison_job = dg.define_asset_job(
    SHADOW_COMPARISON_JOB,
    selection=dg.AssetSelection.assets(shadow_comparison),
    description="Compare the works of one indexed_at window with the legacy minter's output.",
)
