"""`idminter local-run`: `make run`, the whole pipeline on the embedded defaults.

Start the local registry, migrate it, fill the free-ID pool, generate sample works into the
embedded works store, mint them through the real Dagster job (`mint_works`, in process, over the
windows the sample covers, as one multi-partition run), top the pool up again, and print what
happened. Idempotent: running it again regenerates the same works and re-mints the same IDs.

The pool is kept at the level the pool's settings (`IDMINTER_POOL_*`, which `make run` and `make
ui` set for a development machine) ask for, before and after minting: the UI opened next reads
a pool at its target, not one the sample drained below a watermark.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from idminter_pipeline.works.documents import extract_work
from idminter_pipeline.works.sample_data import DEFAULT_SPACING, DEFAULT_START, generate_works
from idminter_pipeline.works.stores import works_store_from_env

LOCAL_SAMPLE_WORKS = 3_000


@click.command("local-run")
@click.option(
    "--works",
    "count",
    type=click.IntRange(min=1),
    default=LOCAL_SAMPLE_WORKS,
    show_default=True,
    help="How many sample works to generate and mint.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def local_run(count: int, seed: int) -> None:
    """Run the whole pipeline locally on sample works and print a summary."""
    # The server and registry modules (pymysql, tenacity, yoyo) are imported when the command
    # runs, so `idminter local-run --help` does not pay for them.
    from idminter_pipeline.local_servers import mariadb as local_database  # noqa: PLC0415
    from idminter_pipeline.registry import schema  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connect, connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.pool import PoolSettings, replenish  # noqa: PLC0415
    from idminter_pipeline.registry.summary import registry_summary  # noqa: PLC0415

    for line in local_database.ensure_server().lines():
        click.echo(line)
    applied = schema.apply_migrations(connection_factory())
    click.echo(f"schema: applied {', '.join(applied)}" if applied else "schema: up to date")

    pool_settings = PoolSettings.from_env()
    click.echo(f"pool: {replenish(connection_factory(), pool_settings).summary()}")

    with works_store_from_env() as store:
        written = store.put_source(generate_works(count, seed=seed))
        click.echo(f"works: {written:,} sample works (seed {seed}) in {store.describe()}")
        last_indexed_at = DEFAULT_START + DEFAULT_SPACING * (count - 1)
        # Dagster loads in about a second: only this command pays for it, not every `idminter` call.
        from idminter_pipeline.defs.works.in_process import mint_windows_in_process  # noqa: PLC0415

        figures = mint_windows_in_process(DEFAULT_START, last_indexed_at + timedelta(0))
        click.echo(
            f"minted through Dagster run {figures['run_id']} (windows {figures['partitions']}): "
            f"{figures['works_read']:,} works read, {figures['works_written']:,} written, "
            f"{figures.get('works_superseded', 0):,} superseded by a successor's document, "
            f"{_failures(figures)}; identifiers: "
            f"{figures['identifiers_found']:,} found, {figures['identifiers_minted']:,} minted, "
            f"{figures['identifiers_inherited']:,} inherited, {figures['identifiers_existing']:,} "
            f"already registered; {figures['mint_calls']} mint transaction(s) in "
            f"{figures['duration_seconds']:.2f}s"
        )
        if figures["windows_with_failures"]:
            click.echo(
                f"failed works in window(s) {', '.join(figures['windows_with_failures'])}: "
                "their no_failed_works check failed; `make ui` shows each partition's failed works"
            )
        _show_inheritance(store, count, seed)

    refilled = replenish(connection_factory(), pool_settings)
    if refilled.added:
        click.echo(f"pool, after minting: {refilled.summary()}")
    conn = connect()
    try:
        summary = registry_summary(conn)
    finally:
        conn.close()
    click.echo(
        f"registry {summary.database}: {summary.free_ids:,} free IDs, "
        f"{summary.assigned_ids:,} assigned, {summary.mappings:,} source identifiers mapped"
    )


def _failures(figures: dict[str, Any]) -> str:
    """`0 failed`, or `3 failed (2 at extract, 1 at mint)`."""
    stages = figures.get("failures_by_stage") or {}
    by_stage = ", ".join(
        f"{count:,} at {stage}" for stage, count in sorted(stages.items()) if count
    )
    return f"{figures['works_failed']:,} failed" + (f" ({by_stage})" if by_stage else "")


def _show_inheritance(store: Any, count: int, seed: int) -> None:
    """One Folio successor and its Sierra predecessor: the same public ID; and, for its items
    naming the Sierra items they replace, the same item IDs."""
    for work in generate_works(min(count, 10), seed=seed):
        extracted = extract_work(work.document, document_id=work.id)
        if extracted.predecessor is None:
            continue
        from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
        from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415

        declarations = extracted.declarations()
        with Minter(connection_factory()) as minter:
            ids = minter.lookup_ids([s for d in declarations for s in (d.source, d.predecessor)])
        for declared in declarations:
            source, predecessor = declared.source, declared.predecessor
            if source in ids and predecessor in ids:
                click.echo(
                    f"example: {source} inherited {ids[source]} from {predecessor} "
                    f"({ids[predecessor]})"
                )
        if extracted.source in ids and store.get_identified([ids[extracted.source]]):
            click.echo(f"         identified work {ids[extracted.source]} is in {store.describe()}")
        return
