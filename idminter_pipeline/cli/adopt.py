"""`idminter db adopt | adopt-variants | sync-adopt | finalize-adopt | rollback-adopt`: a
registry the reference port created, converted into this project's schema."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from idminter_pipeline.cli.legacy import EXIT_BLOCKING_PROBLEMS
from idminter_pipeline.cli.options import StatusReport, dropping_tables
from idminter_pipeline.cli.output import echo_json
from idminter_pipeline.core.limits import (
    LEGACY_DEFAULT_BATCH_SIZE,
    LEGACY_MAX_BATCH_SIZE,
    LEGACY_MIN_BATCH_SIZE,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from idminter_pipeline.registry.connection import ConnectionFactory
    from idminter_pipeline.registry.legacy_migration.adopt import AdoptionDryRun
    from idminter_pipeline.registry.legacy_migration.state import Progress

# The registry modules are imported by the commands that run, so `idminter db --help` does not
# pay for them.

_BATCH_SIZE = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=LEGACY_DEFAULT_BATCH_SIZE,
    show_default=True,
    help=f"Canonical IDs per copy batch, at least 1 (clamped to {LEGACY_MIN_BATCH_SIZE:,}-"
    f"{LEGACY_MAX_BATCH_SIZE:,}).",
)


def _store_keys(factory: ConnectionFactory) -> Iterator[tuple[str, str, str]]:
    """The source identifiers of the configured works store's source and identified works."""
    from idminter_pipeline.registry.legacy_migration.adopt import (  # noqa: PLC0415
        assigned_canonical_ids,
    )
    from idminter_pipeline.works.store_keys import store_keys  # noqa: PLC0415
    from idminter_pipeline.works.stores import works_store_from_env  # noqa: PLC0415

    with works_store_from_env(existing=True) as store:
        yield from store_keys(store, assigned_canonical_ids(factory))


def _print_dry_run(report: AdoptionDryRun) -> None:
    if not report.port_tables:
        click.echo(
            f"nothing to adopt: the registry's tables are this project's (phase {report.phase})"
        )
        return
    click.echo(f"dry run: nothing was written (adoption phase: {report.phase})")
    click.echo(f"  mappings:        {report.mappings:>12,}")
    click.echo(f"  canonical IDs:   {report.canonical_ids}")
    click.echo(f"  batches:         {report.batches:>12,} of {report.batch_size:,}")
    for column, change in report.collation_change.items():
        click.echo(f"  collation:       {column}: {change}")
    for name, finding in report.findings.items():
        click.echo(f"  {name}: {finding.count:,}  ({finding.consequence})")
        for example in finding.examples:
            click.echo(f"      {example!r}")
    if report.keys_checked_in_stores is None:
        click.echo("  variants in use: NOT CHECKED (--skip-stores)")
    else:
        click.echo(
            f"  variants in use: {len(report.variants_in_use):,} of "
            f"{report.keys_checked_in_stores:,} source identifiers in the works stores"
        )
        for variant in report.variants_in_use[:20]:
            click.echo(
                f"      {variant['source']} resolved to {variant['resolved_to']} -> "
                f"{variant['canonical_id']}"
            )
    if report.blocking:
        click.echo("BLOCKING problems found: fix them before adopting")
    elif report.needs_decision:
        click.echo(
            "A PERSON MUST DECIDE: after adoption lookups are exact, so these variants would "
            "be minted new IDs. Register them to the IDs they resolved to (`idminter db "
            "adopt-variants > variants.jsonl`, then `idminter db adopt --register-variants "
            "variants.jsonl`) or not (`--no-variants`)"
        )
    else:
        click.echo("no blocking problems; nothing to decide")


@click.command("adopt")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Report what adopting would copy and change, and the case variants the works stores "
    f"use; writes nothing. Exits {EXIT_BLOCKING_PROBLEMS} when a person must decide or a "
    "problem blocks the adoption.",
)
@click.option(
    "--skip-stores",
    is_flag=True,
    help="With --dry-run: do not read the works stores for variants (reported unchecked).",
)
@_BATCH_SIZE
@click.option(
    "--hold-synced",
    is_flag=True,
    help="Copy and verify, then stop before the swap: the port keeps minting, the triggers "
    "keep logging, `idminter db sync-adopt` keeps the copy in step (for shadow runs).",
)
@click.option(
    "--register-variants",
    "variants_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON lines from `idminter db adopt-variants`: register each variant to the ID it "
    "resolved to, at the swap.",
)
@click.option(
    "--no-variants",
    is_flag=True,
    help="Register no variants: works sending another form than the registered one get a new "
    "ID after the swap.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def adopt(  # noqa: PLR0917 (click passes options positionally)
    dry_run: bool,
    skip_stores: bool,
    batch_size: int,
    hold_synced: bool,
    variants_file: Path | None,
    no_variants: bool,
    as_json: bool,
) -> None:
    """Convert a registry the reference port created (latin1, case-insensitive) into this
    project's schema, online: copy, verify both ways, swap under a short lock.

    Safe to interrupt and run again: it resumes after the last committed batch. The port's
    tables are kept as identifiers_port and canonical_ids_port until `finalize-adopt`. A swap
    needs the decision on variants: --register-variants FILE or --no-variants.

    Exit status: 0 done (or, with --dry-run, nothing to decide); 3 --dry-run found what a person
    must decide or a blocking problem; 2 bad input; 1 any other failure.
    """
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import adopt as adoption  # noqa: PLC0415

    factory = connection_factory()
    if dry_run:
        keys = None if skip_stores else _store_keys(factory)
        report = adoption.adoption_dry_run(factory, batch_size=batch_size, store_keys=keys)
        if as_json:
            echo_json(report.as_dict())
        else:
            _print_dry_run(report)
        if report.blocking or report.needs_decision:
            raise SystemExit(EXIT_BLOCKING_PROBLEMS)
        return
    if variants_file is not None and no_variants:
        raise click.UsageError("--register-variants and --no-variants exclude each other")
    if not hold_synced and variants_file is None and not no_variants:
        raise click.UsageError(
            "a swap needs the decision on case variants: --register-variants FILE (from "
            "`idminter db adopt-variants`) or --no-variants (see `idminter db adopt --dry-run`)"
        )
    variants = adoption.read_variants(variants_file) if variants_file is not None else []

    def show(progress: Progress) -> None:
        if not as_json:
            click.echo(f"  {progress.phase}: {progress.rows_copied:,}", err=True)

    result = adoption.adopt(
        factory, batch_size=batch_size, progress=show, swap=not hold_synced, variants=variants
    )
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(
        f"{result.status}: {result.rows_copied:,} canonical IDs and "
        f"{result.mappings_copied:,} mappings copied in {result.duration_seconds}s"
    )
    for message in result.messages:
        click.echo(f"  {message}")
    if result.swapped:
        click.echo(
            f"  verified {result.new_rows:,} mappings; final lock held {result.lock_seconds}s; "
            f"{result.variants_registered:,} variants registered; run `idminter db "
            "finalize-adopt --yes` once satisfied (or `rollback-adopt --yes`)"
        )


@click.command("adopt-variants")
def adopt_variants() -> None:
    """Print, as JSON lines, each source identifier the works stores use that the port's
    registry holds only in another form its collation matched (`B1161044X` for `b1161044x`).

    Exit status 3 when there are any: a person decides whether to register them (`idminter db
    adopt --register-variants FILE`) or not (`--no-variants`).
    """
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import adopt as adoption  # noqa: PLC0415

    factory = connection_factory()
    conn = factory()
    try:
        _, variants = adoption.find_variants(conn, _store_keys(factory))
    finally:
        conn.close()
    for variant in variants:
        echo_json(variant.as_dict(), pretty=False)
    if variants:
        raise SystemExit(EXIT_BLOCKING_PROBLEMS)


@click.command("sync-adopt")
@_BATCH_SIZE
def sync_adopt(batch_size: int) -> None:
    """Apply the port's latest writes to an adoption held at its synced phase (`adopt
    --hold-synced`), re-checking each applied ID; prints JSON with the lag left."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import adopt as adoption  # noqa: PLC0415

    echo_json(adoption.sync_adoption(connection_factory(), batch_size=batch_size).as_dict())


@click.command("finalize-adopt")
@dropping_tables(
    "Confirm: the port's tables are dropped for good.",
    "finalizing drops identifiers_port and canonical_ids_port for good; pass --yes",
)
def finalize_adopt() -> StatusReport:
    """Drop the port's kept tables after a successful swap (no rollback afterwards)."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import adopt as adoption  # noqa: PLC0415

    return adoption.finalize_adoption(connection_factory())


@click.command("rollback-adopt")
@dropping_tables(
    "Confirm: the adopted tables are dropped.",
    "rolling back drops the adopted copy; pass --yes",
)
def rollback_adopt() -> StatusReport:
    """Put the port's tables back (before finalize), copying back what they can hold."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration import adopt as adoption  # noqa: PLC0415

    return adoption.rollback_adoption(connection_factory())
