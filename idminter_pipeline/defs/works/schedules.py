"""Mint the latest complete window every window-length, a few minutes behind real time."""

import os
from datetime import timedelta

import dagster as dg

from idminter_pipeline.defs.works.jobs import mint_works_job
from idminter_pipeline.defs.works.partitions import WINDOW_MINUTES, WORKS_PARTITIONS, window_cron

# The source index refreshes within seconds, but transformers finish batches late: a window is
# minted this long after it closes, so documents indexed at its very end are visible.
LAG_MINUTES = int(os.environ.get("IDMINTER_WORKS_SCHEDULE_LAG_MINUTES") or 5)
DEFAULT_STATUS = (
    dg.DefaultScheduleStatus.RUNNING
    if os.environ.get("IDMINTER_WORKS_SCHEDULE_RUNNING", "").lower() in ("1", "true")
    else dg.DefaultScheduleStatus.STOPPED
)


@dg.schedule(
    job=mint_works_job,
    cron_schedule=window_cron(
        WINDOW_MINUTES,
        offset_minutes=LAG_MINUTES % WINDOW_MINUTES if WINDOW_MINUTES < 60 else LAG_MINUTES % 60,
    ),
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
)
def mint_latest_works_window(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """The newest window that closed at least the lag ago (one run per window: run_key)."""
    tick = context.scheduled_execution_time
    cutoff = tick - timedelta(minutes=LAG_MINUTES)
    # The window that contains the cutoff is still open; the one before it is the latest closed.
    current = WORKS_PARTITIONS.time_window_for_partition_key(
        WORKS_PARTITIONS.get_partition_key_for_timestamp(cutoff.timestamp())
    )
    window = WORKS_PARTITIONS.get_prev_partition_window(current.start)
    if window is None:
        return dg.SkipReason(f"no window closed by {cutoff.isoformat()}")
    key = window.start.strftime(WORKS_PARTITIONS.fmt)
    return dg.RunRequest(run_key=key, partition_key=key)
