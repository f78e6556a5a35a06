"""Mint the latest complete window every window-length, a few minutes behind real time; and
sweep up the works the windows missed (both stopped unless switched on)."""

import os

import dagster as dg

from idminter_pipeline.defs.works.jobs import mint_works_job, sweep_works_job
from idminter_pipeline.defs.works.partitions import (
    lagged_window_cron,
    latest_window_closed_before,
    schedule_settings_from_env,
)

# The source index refreshes within seconds, but transformers finish batches late: a window is
# minted this long after it closes, so documents indexed at its very end are visible.
LAG_MINUTES, DEFAULT_STATUS = schedule_settings_from_env(
    "IDMINTER_WORKS_SCHEDULE_LAG_MINUTES", "IDMINTER_WORKS_SCHEDULE_RUNNING", 5
)


@dg.schedule(
    job=mint_works_job,
    cron_schedule=lagged_window_cron(LAG_MINUTES),
    execution_timezone="UTC",
    default_status=DEFAULT_STATUS,
)
def mint_latest_works_window(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """The newest window that closed at least the lag ago (one run per window: run_key)."""
    return latest_window_closed_before(context.scheduled_execution_time, LAG_MINUTES)


# Hourly, away from the window ticks. Stopped by default like the works schedule: switched on
# with IDMINTER_SWEEPER_SCHEDULE_RUNNING=1 where the works schedule runs.
SWEEPER_CRON = "40 * * * *"
SWEEPER_STATUS = (
    dg.DefaultScheduleStatus.RUNNING
    if os.environ.get("IDMINTER_SWEEPER_SCHEDULE_RUNNING", "").strip().lower() in ("1", "true")
    else dg.DefaultScheduleStatus.STOPPED
)


@dg.schedule(
    job=sweep_works_job,
    cron_schedule=SWEEPER_CRON,
    execution_timezone="UTC",
    default_status=SWEEPER_STATUS,
)
def sweep_missing_works(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One sweep per tick (its time as run key, so a tick never launches two)."""
    return dg.RunRequest(run_key=context.scheduled_execution_time.isoformat())
