"""Compare each window once the legacy minter has had time to write it (stopped by default:
it runs while a cutover is being prepared, `IDMINTER_SHADOW_SCHEDULE_RUNNING=1`)."""

from idminter_pipeline.defs.shadow.jobs import shadow_comparison_job
from idminter_pipeline.defs.works.partitions import lagged_window_schedule

# The legacy pipeline writes a window's works some minutes after they are indexed; comparing
# sooner would count its lag as `not_in_reference`.
shadow_compare_lagged_window = lagged_window_schedule(
    "shadow_compare_lagged_window",
    shadow_comparison_job,
    lag_variable="IDMINTER_SHADOW_SCHEDULE_LAG_MINUTES",
    running_variable="IDMINTER_SHADOW_SCHEDULE_RUNNING",
    default_lag_minutes=30,
)
