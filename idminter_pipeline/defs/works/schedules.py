"""Mint the latest complete window every window-length, a few minutes behind real time; and
sweep up the works the windows missed (both stopped unless switched on)."""

import dagster as dg

from idminter_pipeline.core.settings import env_flag
from idminter_pipeline.defs.works.jobs import mint_works_job, sweep_works_job
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


# Hourly, away from the window ticks. Stopped by default like the works schedule: switched on
# with IDMINTER_SWEEPER_SCHEDULE_RUNNING=1 where the works schedule runs.
SWEEPER_CRON = "40 * * * *"
SWEEPER_STATUS = (
    dg.DefaultScheduleStatus.RUNNING
    if env_flag("IDMINTER_SWEEPER_SCHEDULE_RUNNING")
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
