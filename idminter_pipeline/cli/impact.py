"""`idminter impact`: what a candidate source index or store would do to public IDs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from idminter_pipeline.cli.output import echo_report
from idminter_pipeline.cli.works import EXIT_SOME_WORKS_FAILED, scope_options
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.works.stores import WorkScope, WorksStore, works_store_from_env

EXIT_OVER_THRESHOLD = EXIT_SOME_WORKS_FAILED


def open_candidate(path: Path | None, index: str | None) -> WorksStore:
    """The candidate's source works: a SQLite store that exists, or an index on the cluster
    ELASTICSEARCH_URL names. Exactly one."""
    if (path is None) == (index is None):
        raise InvalidInputError(
            "give exactly one candidate: --candidate-store PATH (a SQLite works store) or "
            "--candidate-index NAME (an Elasticsearch index)"
            + (" (got both: --candidate-index with --candidate-store)" if path else "")
        )
    from idminter_pipeline.core.settings import ElasticsearchSettings  # noqa: PLC0415
    from idminter_pipeline.works.impact import (  # noqa: PLC0415
        elasticsearch_candidate,
        sqlite_candidate,
    )

    if path is not None:
        return sqlite_candidate(path, named_by="--candidate-store")
    from idminter_pipeline.works.stores.elasticsearch import client_from_env  # noqa: PLC0415

    client = client_from_env(os.environ, needed_by=f"--candidate-index {index}")
    return elasticsearch_candidate(client, str(index), ElasticsearchSettings.from_env())


@click.command("impact")
@scope_options("assess")
@click.option(
    "--candidate-store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The candidate's source works: a SQLite works store.",
)
@click.option(
    "--candidate-index",
    help="The candidate's source works: an Elasticsearch index on the works store's cluster.",
)
def impact(scope: WorkScope, candidate_store: Path | None, candidate_index: str | None) -> None:
    """Count, per ontology type and source system, the public IDs a candidate source index or
    store would mint anew, inherit and keep, and the published IDs no document would carry any
    more, against the identified works published today (the works store).

    Writes nothing: the registry is only read. Each figure lists the works and nodes behind it
    (the first 100). Thresholds: IDMINTER_IMPACT_MAX_UNCARRIED and IDMINTER_IMPACT_MAX_NEW. Prints
    a JSON report; exits 1 if a figure is over its threshold.
    """
    # Imported here: the registry client and the pipeline load only when an assessment runs.
    from idminter_pipeline.core.settings import DatabaseSettings  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.works.impact import ImpactThresholds, assess_impact  # noqa: PLC0415

    thresholds = ImpactThresholds.from_env()
    factory = connection_factory(DatabaseSettings.from_env())
    with (
        open_candidate(candidate_store, candidate_index) as candidate,
        works_store_from_env(existing=True) as published,
    ):
        report = assess_impact(candidate, published, factory, scope, thresholds=thresholds)
    echo_report(report, fails=report.breaches, exit_code=EXIT_OVER_THRESHOLD)
