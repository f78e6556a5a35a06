"""`idminter shadow`: what this minter would assign, compared with the legacy minter's output."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from idminter_pipeline.cli.output import echo_report
from idminter_pipeline.cli.works import scope_options
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.core.limits import DEFAULT_BATCH_SIZE
from idminter_pipeline.works.stores import WorkScope, WorksStore, works_store_from_env

if TYPE_CHECKING:
    from idminter_pipeline.works.shadow import Reference

# The registry client and the shadow modules are imported when a run starts, so
# `idminter shadow --help` does not pay for them (pymysql, tenacity).

EXIT_UNEXPECTED_DIFFERENCES = 1


def _reference(path: Path | None, index: str | None) -> Reference:
    if (path is None) == (index is None):
        raise click.UsageError(
            "give exactly one reference: --reference PATH (a SQLite works store) or "
            "--reference-index NAME (Elasticsearch)"
        )
    from idminter_pipeline.works.shadow import (  # noqa: PLC0415
        ElasticsearchReference,
        SqliteReference,
    )

    if path is not None:
        return SqliteReference(path)
    assert index is not None
    return ElasticsearchReference.from_env(index)


def _source_store() -> WorksStore:
    """The works store to read, opened read-only (a shadow run leaves its file byte for byte as
    it was); a mistyped path would read as zero works compared, so a missing one is refused."""
    return works_store_from_env(read_only=True)


@click.command("shadow")
@scope_options("compare")
@click.option(
    "--reference",
    "reference_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A SQLite works store whose identified_works table holds the legacy minter's output.",
)
@click.option(
    "--reference-index",
    help="An Elasticsearch index holding the legacy minter's output (on ELASTICSEARCH_URL).",
)
@click.option(
    "--batch-size",
    type=int,
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Works per registry lookup: at least 1; above 5000 is lowered to 5000.",
)
def shadow(
    scope: WorkScope, reference_path: Path | None, reference_index: str | None, batch_size: int
) -> None:
    """Work out what `mint` would assign to the works of one scope and compare each annotated
    document with the reference's document for the same state.sourceIdentifier.

    Writes nothing: not to the registry (plain reads, no locks), not to the works store, not
    to the reference. Prints a JSON summary: per category (agree, differ_expected,
    differ_unexpected, not_in_reference, would_mint) the number of works, and every unexpected
    difference (work, JSON path, ours, theirs). Exits 1 if any difference is unexpected.
    """
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.works.pipeline import clamp_batch_size  # noqa: PLC0415
    from idminter_pipeline.works.shadow import shadow_run  # noqa: PLC0415

    batch_size = clamp_batch_size(batch_size)
    reference = _reference(reference_path, reference_index)
    try:
        with batch_run_collector(), _source_store() as store:
            report = shadow_run(
                store, reference, connection_factory(), scope, batch_size=batch_size
            )
    finally:
        reference.close()
    echo_report(report, fails=report.unexpected_works, exit_code=EXIT_UNEXPECTED_DIFFERENCES)
