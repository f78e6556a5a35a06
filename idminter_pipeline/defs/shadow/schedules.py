"""Compare each window once the legacy minter has had time to write it (stopped by default:
it runs while a cutover is being prepared, `IDMINTER_SHADOW_SCHEDULE_RUNNING=1`)."""

import os
from datetime import timedelta

import dagster as dg

from idminter_pipeline.defs.shadow.jobs import shadow_comparison_job
from idminter_pipeline.defs.works.partitions import WINDOW_MINUTES, WORKS_PARTITIONS, window_cron

# The legacy pipeline writes a window's works some minutes after they are indexed; comparing
# sooner would count its lag as `not_in_reference`.
LAG_MINUTES = int(os.environ.get("IDMINTER_SHADOW_SCHEDULE_LAG_MINUTES") or 30)
DEFAULT_STATUS = (
    dg.DefaultScheduleStatus.RUNNING
    if os.environ.get("IDMINTER_SHADOW_SCHEDULE_RUNNING", "").lower() in ("1", "true")
    else dg.DefaultScheduleStatus.STOPPED
)


@dg.schedule(
    job=shadow_comparison_job,
    cron_schedule=window_cron(WINDOW_MINUTES),
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
)
def shadow_compare_lagged_window(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """The newest window that closed at least the lag before this tick (one run per window)."""
    cutoff = context.scheduled_execution_time - timedelta(minutes=LAG_MINUTES)
    # The window holding the cutoff is still within the lag; the one before it is due.
    current = WORKS_PARTITIONS.time_window_for_partition_key(
        WORKS_PARTITIONS.get_partition_key_for_timestamp(cutoff.timestamp())
    )
    window = WORKS_PARTITIONS.get_prev_partition_window(current.start)
    if window is None:
        return dg.SkipReason(f"no window closed by {cutoff.isoformat()}")
    key = window.start.strftime(WORKS_PARTITIONS.fmt)
    return dg.RunRequest(run_key=key, partition_key=key)
