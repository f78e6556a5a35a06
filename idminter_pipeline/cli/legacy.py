"""`idminter db migrate-legacy | finalize-legacy | rollback-legacy`: the legacy 1:1 registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from idminter_pipeline.cli.options import StatusReport, at_least_one, dropping_tables
from idminter_pipeline.cli.output import echo_json
from idminter_pipeline.core.limits import (
    LEGACY_DEFAULT_BATCH_SIZE,
    LEGACY_MAX_BATCH_SIZE,
    LEGACY_MIN_BATCH_SIZE,
)

if TYPE_CHECKING:
    from idminter_pipeline.registry import legacy_migration

# The registry modules are imported by the commands that run, so `idminter db --help` does not
# pay for them (see registry.limits).

# `--dry-run` exit status when it found problems that would stop the migration: distinct from 1
# (the dry run itself failed, e.g. the registry is unreachable) so a script can tell them apart.
EXIT_BLOCKING_PROBLEMS = 3


def _print_dry_run(report: legacy_migration.DryRunReport) -> None:
    from idminter_pipeline.registry import legacy_migration  # noqa: PLC0415

    if report.shape != legacy_migration.RegistryShape.LEGACY.value:
        click.echo(f"nothing to migrate: identifiers is {report.shape} (phase {report.phase})")
        return
    click.echo(f"dry run: nothing was written (migration phase: {report.phase})")
    click.echo(f"  legacy rows:     {report.legacy_rows:>12,}")
    click.echo(f"  already copied:  {report.already_copied:>12,}")
    click.echo(f"  would copy:      {report.would_copy:>12,} in {report.batches:,} batches")
    click.echo(f"  ontology types:  {report.ontology_types}")
    for name, finding in report.findings.items():
        click.echo(f"  {name}: {finding.count:,}  ({finding.consequence})")
        for example in finding.examples:
            click.echo(f"      {example!r}")
    click.echo(
        "BLOCKING problems found: fix them before migrating"
        if report.blocking
        else "no blocking problems"
    )


@click.command("migrate-legacy")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Report what would be copied and any problem; writes nothing. Exits "
    f"{EXIT_BLOCKING_PROBLEMS} if it finds BLOCKING problems.",
)
@at_least_one(
    "--batch-size",
    LEGACY_DEFAULT_BATCH_SIZE,
    f"Rows per copy batch, at least 1 (clamped to {LEGACY_MIN_BATCH_SIZE:,}-"
    f"{LEGACY_MAX_BATCH_SIZE:,}).",
)
@click.option(
    "--hold-synced",
    is_flag=True,
    help="Copy and verify, then stop before the swap: the legacy minter keeps writing, the "
    "triggers keep logging, and `idminter db sync-legacy` keeps the copy in step (for shadow "
    "runs). Run again without it to swap.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def migrate_legacy(dry_run: bool, batch_size: int, hold_synced: bool, as_json: bool) -> None:
    """Copy a legacy 1:1 `identifiers` table into the RFC 083 tables, verify, and swap.

    Safe to interrupt and run again: it resumes after the last committed batch. The legacy
    table is kept as identifiers_legacy until `finalize-legacy`.

    Exit status: 0 done (or, with --dry-run, no blocking problem); 3 --dry-run found BLOCKING
    problems; 2 bad input; 1 any other failure.
    """
    from idminter_pipeline.registry import legacy_migration  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415

    factory = connection_factory()
    if dry_run:
        report = legacy_migration.dry_run(factory, batch_size=batch_size)
        if as_json:
            echo_json(report.as_dict())
        else:
            _print_dry_run(report)
        if report.blocking:
            raise SystemExit(EXIT_BLOCKING_PROBLEMS)
        return

    def show(progress: legacy_migration.Progress) -> None:
        if not as_json:
            click.echo(
                f"  {progress.phase}: {progress.rows_copied:,} rows"
                + (f" of ~{progress.estimated_total:,}" if progress.estimated_total else "")
                + (
                    f", {progress.pending_changes:,} changes pending"
                    if progress.phase.startswith("catching up")
                    else ""
                ),
                err=True,
            )

    result = legacy_migration.migrate(
        factory, batch_size=batch_size, progress=show, swap=not hold_synced
    )
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"{result.status}: {result.rows_copied:,} rows copied in {result.duration_seconds}s")
    for message in result.messages:
        click.echo(f"  {message}")
    if hold_synced and result.status.startswith("copied and verified"):
        click.echo(
            "  held at its synced phase (no swap): `idminter db sync-legacy` keeps the copy in "
            "step, `idminter db legacy-status` shows the lag"
        )
    if result.swapped:
        click.echo(
            f"  verified {result.new_rows:,} mappings; final lock held {result.lock_seconds}s "
            f"({result.changes_applied_under_lock:,} changes applied and "
            f"{result.lock_rows_read:,} rows read under it); "
            "run `idminter db finalize-legacy` once satisfied (or `rollback-legacy`)"
        )


@click.command("finalize-legacy")
@dropping_tables(
    "Confirm: the legacy table is dropped for good.",
    "finalizing drops identifiers_legacy for good; pass --yes",
)
def finalize_legacy() -> StatusReport:
    """Drop the kept legacy table after a successful swap (no rollback afterwards)."""
    from idminter_pipeline.registry import legacy_migration  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415

    return legacy_migration.finalize(connection_factory())


@click.command("rollback-legacy")
@dropping_tables(
    "Confirm: the migrated tables are dropped.",
    "rolling back drops the migrated copy; pass --yes",
)
def rollback_legacy() -> StatusReport:
    """Restore the legacy 1:1 table (before finalize), copying back what it can hold."""
    from idminter_pipeline.registry import legacy_migration  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415

    return legacy_migration.rollback(connection_factory())


@click.command("sync-legacy")
@at_least_one(
    "--batch-size",
    LEGACY_DEFAULT_BATCH_SIZE,
    "Change-log entries per transaction.",
)
def sync_legacy(batch_size: int) -> None:
    """Apply the legacy minter's latest writes to a copy held at its synced phase
    (`migrate-legacy --hold-synced`), re-checking each applied ID; prints JSON with the lag left.
    """
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import hold  # noqa: PLC0415

    echo_json(hold.sync(connection_factory(), batch_size=batch_size).as_dict())


@click.command("legacy-status")
def legacy_status() -> None:
    """Where a legacy migration stands: shape, phase, whether it holds at its synced phase, and
    the copy's lag (change-log entries not applied yet, and the oldest one's age). JSON."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import hold  # noqa: PLC0415

    echo_json(hold.status_with_lag(connection_factory()))
