"""Time windows of `indexed_at`: one partition of `identified_works` per window.

Window length and start come from `IDMINTER_WORKS_WINDOW_MINUTES` (15 by default; a divisor of 60,
or whole hours dividing 24) and `IDMINTER_WORKS_PARTITIONS_START` (`YYYY-MM-DD-HH:MM`, UTC).
Partitions are half-open windows [start, end), so neighbours never share a work.
"""

import os

import dagster as dg

from idminter_pipeline.errors import InvalidInputError

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


WINDOW_MINUTES = int(os.environ.get("IDMINTER_WORKS_WINDOW_MINUTES") or DEFAULT_WINDOW_MINUTES)
WORKS_PARTITIONS = works_partitions_def(
    os.environ.get("IDMINTER_WORKS_PARTITIONS_START") or DEFAULT_PARTITIONS_START, WINDOW_MINUTES
)
