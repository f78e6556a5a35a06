"""Compare each window once the legacy minter has had time to write it (stopped by default:
it runs while a cutover is being prepared, `IDMINTER_SHADOW_SCHEDULE_RUNNING=1`)."""

import dagster as dg

from idminter_pipeline.defs.shadow.jobs import shadow_comparison_job
from idminter_pipeline.defs.works.partitions import (
    lagged_window_cron,
    latest_window_closed_before,
    schedule_settings_from_env,
)

# The legacy pipeline writes a window's works some minutes after they are indexed; comparing
# sooner would count its lag as `not_in_reference`.
LAG_MINUTES, DEFAULT_STATUS = schedule_settings_from_env(
    "IDMINTER_SHADOW_SCHEDULE_LAG_MINUTES", "IDMINTER_SHADOW_SCHEDULE_RUNNING", 30
)


@dg.schedule(
    job=shadow_comparison_job,
    cron_schedule=lagged_window_cron(LAG_MINUTES),
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
)
def shadow_compare_lagged_window(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """The newest window that closed at least the lag before this tick (one run per window)."""
    return latest_window_closed_before(context.scheduled_execution_time, LAG_MINUTES)
