"""The periodic reconciliation RFC 083 asks for ("Risks": orphaned IDs, predecessor mismatches):
a report every night, whose critical findings alert."""

import dagster as dg

from idminter_pipeline.core.settings import env_text
from idminter_pipeline.defs.reconciliation.jobs import registry_reconciliation_job

RECONCILIATION_CRON_ENV = "IDMINTER_RECONCILIATION_CRON"
RECONCILIATION_TIMEZONE_ENV = "IDMINTER_RECONCILIATION_TIMEZONE"
RECONCILIATION_SCHEDULE_NAME = "registry_reconciliation"
DEFAULT_RECONCILIATION_CRON = "30 2 * * *"  # daily, 02:30, when minting is quiet
DEFAULT_RECONCILIATION_TIMEZONE = "Europe/London"


def build_registry_reconciliation_schedule(
    cron_schedule: str | None = None, timezone: str | None = None
) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=RECONCILIATION_SCHEDULE_NAME,
        job=registry_reconciliation_job,
        cron_schedule=cron_schedule
        or env_text(RECONCILIATION_CRON_ENV, DEFAULT_RECONCILIATION_CRON),
        execution_timezone=timezone
        or env_text(RECONCILIATION_TIMEZONE_ENV, DEFAULT_RECONCILIATION_TIMEZONE),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        tags={"idminter/reason": "schedule"},
        description=(
            "Reconciles the registry every day (a report: repairs stay a person's decision); "
            "critical findings alert."
        ),
    )


registry_reconciliation_schedule = build_registry_reconciliation_schedule()
