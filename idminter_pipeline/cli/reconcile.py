"""`idminter reconcile`: registry consistency findings, and the repairs that are safe."""

from __future__ import annotations

import click

from idminter_pipeline.cli.options import at_least_one
from idminter_pipeline.cli.output import echo_json
from idminter_pipeline.core.limits import (
    RECONCILIATION_DEFAULT_BATCH_SIZE,
    RECONCILIATION_MAX_BATCH_SIZE,
    RECONCILIATION_MIN_BATCH_SIZE,
)


@click.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--repair",
    is_flag=True,
    help="Mark free IDs in use as assigned; return orphans unused for the grace period.",
)
@click.option(
    "--grace-period",
    default="7d",
    show_default=True,
    help="How long an assigned ID must stay unused before --repair returns it (30m, 12h, 7d).",
)
@at_least_one(
    "--batch-size",
    RECONCILIATION_DEFAULT_BATCH_SIZE,
    f"Keys per scan batch, at least 1 (clamped to {RECONCILIATION_MIN_BATCH_SIZE:,}-"
    f"{RECONCILIATION_MAX_BATCH_SIZE:,}).",
)
def reconcile(as_json: bool, repair: bool, grace_period: str, batch_size: int) -> None:
    """Find orphans, free IDs in use, mappings without IDs, predecessor mismatches and
    case/padding variants. Exit status 1 when a free ID in use remains (it could be handed out
    twice)."""
    # Imported here, so `--help` does not pay for the registry modules (see registry.limits).
    from idminter_pipeline.registry import reconciliation  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415

    report = reconciliation.reconcile(
        connection_factory(),
        repair=repair,
        grace_period=reconciliation.parse_duration(grace_period),
        batch_size=batch_size,
    )
    if as_json:
        echo_json(report.as_dict())
    else:
        frame = report.to_frame()
        click.echo(frame.drop(columns=["note"]).to_string(index=False))
        for _, row in frame[frame["note"] != ""].iterrows():
            click.echo(f"note: {row['finding']}: {row['note']}")
        if repair:
            click.echo(f"\n{report.changes_total} change(s):")
            if report.changes:
                click.echo(report.changes_frame().to_string(index=False))
    danger = report.result(reconciliation.FREE_IDS_IN_USE)
    if danger.count > danger.repaired:
        raise SystemExit(1)
