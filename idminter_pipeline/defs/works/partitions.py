"""Time windows of `indexed_at`: one partition of `identified_works` per window.

Window length and start come from `IDMINTER_WORKS_WINDOW_MINUTES` (15 by default; a divisor of 60,
or whole hours dividing 24) and `IDMINTER_WORKS_PARTITIONS_START` (`YYYY-MM-DD-HH:MM`, UTC).
Partitions are half-open windows [start, end), so neighbours never share a work. The schedules
that follow the windows (works, shadow) are made by `lagged_window_schedule`.
"""

from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.settings import env_flag, env_int, env_text

DEFAULT_WINDOW_MINUTES = 15
DEFAULT_PARTITIONS_START = "2026-07-30-00:00"
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def window_cron(minutes: int, *, offset_minutes: int = 0) -> str:
    """The cron schedule whose ticks start windows of `minutes` (shifted by `offset_minutes`)."""
    if minutes < 60 and 60 % minutes == 0:
        if not 0 <= offset_minutes < minutes:
            raise InvalidInputError(f"offset {offset_minutes} must be under {minutes} minutes")
        return f"{offset_minutes}-59/{minutes} * * * *" if minutes > 1 else "* * * * *"
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        hours = minutes // 60
        if not 0 <= offset_minutes < 60:
            raise InvalidInputError(f"offset {offset_minutes} must be under 60 minutes")
        return f"{offset_minutes} */{hours} * * *" if hours < 24 else f"{offset_minutes} 0 * * *"
    raise InvalidInputError(
        f"window length {minutes} minutes: use a divisor of 60, or whole hours dividing 24"
    )


def works_partitions_def(
    start: str = DEFAULT_PARTITIONS_START, minutes: int = DEFAULT_WINDOW_MINUTES
) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        start=start,
        cron_schedule=window_cron(minutes),
        fmt=PARTITION_FORMAT,
        timezone="UTC",
    )


WINDOW_MINUTES = env_int(
    None, "IDMINTER_WORKS_WINDOW_MINUTES", DEFAULT_WINDOW_MINUTES, minimum=1, maximum=24 * 60
)
WORKS_PARTITIONS = works_partitions_def(
    env_text("IDMINTER_WORKS_PARTITIONS_START", DEFAULT_PARTITIONS_START) or "", WINDOW_MINUTES
)


def lagged_window_cron(lag_minutes: int) -> str:
    """Window ticks shifted so that one falls just when a window is `lag_minutes` old."""
    period = WINDOW_MINUTES if WINDOW_MINUTES < 60 else 60
    return window_cron(WINDOW_MINUTES, offset_minutes=lag_minutes % period)


def schedule_settings_from_env(
    lag_variable: str, running_variable: str, default_lag_minutes: int
) -> tuple[int, dg.DefaultScheduleStatus]:
    """(lag in minutes, default status) of a schedule that follows the windows: a lag that is not
    a whole number of minutes up to a day is refused, naming the variable; the schedule runs by
    default only when its switch is on (`env_flag`)."""
    lag = env_int(None, lag_variable, default_lag_minutes, minimum=0, maximum=24 * 60)
    running = env_flag(running_variable)
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    return lag, status


def latest_window_closed_before(tick: datetime, lag_minutes: int) -> dg.RunRequest | dg.SkipReason:
    """A run of the newest window that closed at least `lag_minutes` before `tick` (its key as
    run key, so each window runs once), shared by every schedule that follows the windows."""
    cutoff = tick - timedelta(minutes=lag_minutes)
    # The window that contains the cutoff is still within the lag; the one before it is due.
    current = WORKS_PARTITIONS.time_window_for_partition_key(
        WORKS_PARTITIONS.get_partition_key_for_timestamp(cutoff.timestamp())
    )
    window = WORKS_PARTITIONS.get_prev_partition_window(current.start)
    if window is None:
        return dg.SkipReason(f"no window closed by {cutoff.isoformat()}")
    key = window.start.strftime(WORKS_PARTITIONS.fmt)
    return dg.RunRequest(run_key=key, partition_key=key)


def lagged_window_schedule(
    name: str,
    job: Any,  # a job or an asset job (dg.define_asset_job): what dg.schedule takes
    *,
    lag_variable: str,
    running_variable: str,
    default_lag_minutes: int,
) -> dg.ScheduleDefinition:
    """A schedule that runs `job` on the newest window closed at least the lag ago, once per
    window (its key as run key); lag and default status from the two variables."""
    lag, status = schedule_settings_from_env(lag_variable, running_variable, default_lag_minutes)

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=lagged_window_cron(lag),
        execution_timezone="UTC",
        default_status=status,
    )
    def follow_windows(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        return latest_window_closed_before(context.scheduled_execution_time, lag)

    return follow_windows
