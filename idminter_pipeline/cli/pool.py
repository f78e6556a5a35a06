"""`idminter pool ...`: the free-ID pool's health and top-ups."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idminter_pipeline.cli.options import at_least_one
from idminter_pipeline.cli.output import echo_json
from idminter_pipeline.core.limits import (
    POOL_DEFAULT_MAX_ROUNDS as DEFAULT_MAX_ROUNDS,
)
from idminter_pipeline.core.limits import (
    POOL_DEFAULT_WRITERS as DEFAULT_WRITERS,
)
from idminter_pipeline.core.limits import (
    POOL_MAX_BATCH_SIZE as MAX_BATCH_SIZE,
)
from idminter_pipeline.core.limits import (
    POOL_MAX_WRITERS as MAX_WRITERS,
)

if TYPE_CHECKING:
    from idminter_pipeline.registry.pool import PoolHealth

# The registry modules are imported by the commands that run, so `--help` does not pay for them
# (see registry.limits).


@click.group()
def pool() -> None:
    """The pool of pre-generated free canonical IDs that minting claims."""


def _hours(hours: float | None) -> str:
    if hours is None:
        return "never (nothing minted)"
    if hours >= 48:
        return f"{hours / 24:,.1f} days"
    return f"{hours:,.1f} hours"


def _print_health(health: PoolHealth) -> None:
    click.echo(f"measured at      {health.measured_at.isoformat()}")
    click.echo(f"free             {health.free:,}")
    click.echo(f"assigned         {health.assigned:,}")
    click.echo(f"total            {health.total:,}")
    if health.assigned_without_time:
        click.echo(f"  without time   {health.assigned_without_time:,} (legacy or before 0003)")
    for window, minted in (
        ("hour", health.minted_last_hour),
        ("day", health.minted_last_day),
        ("week", health.minted_last_week),
    ):
        rate = health.rates_per_hour[window]
        click.echo(f"minted last {window:<5}{minted:,} ({rate:,.1f}/hour)")
    exhausted = health.exhausted_at
    click.echo(
        f"runs out in      {_hours(health.hours_until_empty)}"
        + (f" (at {exhausted.isoformat(timespec='minutes')}," if exhausted else "")
        + (
            f" at the busiest window's {health.forecast_rate_per_hour:,.1f}/hour)"
            if exhausted
            else ""
        )
    )


@pool.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def status(as_json: bool) -> None:
    """Free, assigned and total IDs; mint rates over the last hour, day and week; forecast."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.pool import pool_health  # noqa: PLC0415

    health = pool_health(connection_factory())
    if as_json:
        echo_json(health.as_dict())
    else:
        _print_health(health)


@pool.command("top-up")
@at_least_one(
    "--target",
    None,
    "Free IDs the pool should hold afterwards [default: IDMINTER_POOL_TARGET_FREE or 1M].",
)
@at_least_one(
    "--batch-size",
    None,
    f"IDs per INSERT statement, clamped to {MAX_BATCH_SIZE:,} [default: 50,000].",
)
@at_least_one(
    "--max-rounds",
    DEFAULT_MAX_ROUNDS,
    "How many times IDs that already exist are drawn again before giving up.",
)
@at_least_one(
    "--writers",
    DEFAULT_WRITERS,
    f"Connections inserting at once (clamped to {MAX_WRITERS}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def top_up_command(
    target: int | None, batch_size: int | None, max_rounds: int, writers: int, as_json: bool
) -> None:
    """Add free IDs until the pool holds TARGET; prints what it added and how long it took."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.pool import PoolSettings, top_up  # noqa: PLC0415

    settings = PoolSettings.from_env()
    report = top_up(
        connection_factory(),
        settings.target_free if target is None else target,
        batch_size=settings.batch_size if batch_size is None else batch_size,
        max_rounds=max_rounds,
        writers=writers,
    )
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(report.summary())
