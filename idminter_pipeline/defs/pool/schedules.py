"""Weekday-morning replenishment, so the pool starts every working day full."""

import dagster as dg

from idminter_pipeline.core.settings import env_text
from idminter_pipeline.defs.pool.jobs import pool_replenishment_job

REPLENISH_CRON_ENV = "IDMINTER_POOL_REPLENISH_CRON"
SCHEDULE_TIMEZONE_ENV = "IDMINTER_POOL_SCHEDULE_TIMEZONE"
DEFAULT_REPLENISH_CRON = "0 6 * * 1-5"  # 06:00 Monday to Friday
DEFAULT_SCHEDULE_TIMEZONE = "Europe/London"


def build_pool_replenishment_schedule(
    cron_schedule: str | None = None, timezone: str | None = None
) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="pool_replenishment_schedule",
        job=pool_replenishment_job,
        cron_schedule=cron_schedule or env_text(REPLENISH_CRON_ENV, DEFAULT_REPLENISH_CRON),
        execution_timezone=timezone or env_text(SCHEDULE_TIMEZONE_ENV, DEFAULT_SCHEDULE_TIMEZONE),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={"idminter/reason": "schedule"},
        description="Tops the free-ID pool up to its target on weekday mornings.",
    )


pool_replenishment_schedule = build_pool_replenishment_schedule()
