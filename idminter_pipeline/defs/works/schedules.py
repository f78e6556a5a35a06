"""Mint the latest complete window every window-length, a few minutes behind real time."""

from idminter_pipeline.defs.works.jobs import mint_works_job
from idminter_pipeline.defs.works.partitions import lagged_window_schedule

# The source index refreshes within seconds, but transformers finish batches late: a window is
# minted this long after it closes, so documents indexed at its very end are visible.
mint_latest_works_window = lagged_window_schedule(
    "mint_latest_works_window",
    mint_works_job,
    lag_variable="IDMINTER_WORKS_SCHEDULE_LAG_MINUTES",
    running_variable="IDMINTER_WORKS_SCHEDULE_RUNNING",
    default_lag_minutes=5,
)
