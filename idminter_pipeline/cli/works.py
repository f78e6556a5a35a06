"""`idminter works generate|load` (fill the works store) and `idminter mint` (run the pipeline)."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import click

from idminter_pipeline.cli.output import echo_json, echo_report
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.core.job_ids import check_job_id
from idminter_pipeline.core.limits import DEFAULT_BATCH_SIZE
from idminter_pipeline.works.ndjson import read_source_works
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import (
    FullScope,
    IdsScope,
    WindowScope,
    WorkScope,
    WorksStore,
    works_store_from_env,
)
from idminter_pipeline.works.stores.base import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from idminter_pipeline.registry.minting import Minter

EXIT_SOME_WORKS_FAILED = 1


@click.group("works")
def works() -> None:
    """Source works: sample data and real documents for the works store.

    The store is the embedded SQLite file (.local/works.sqlite3, or WORKS_STORE_PATH), or
    Elasticsearch when ELASTICSEARCH_URL is set.
    """


@works.command("generate")
@click.option("--count", type=click.IntRange(min=0), required=True, help="How many works.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same works.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Index of the first work.")
@click.option(
    "--start",
    default=format_timestamp(DEFAULT_START),
    show_default=True,
    help="indexed_at of work number 0 (works follow 1.5 seconds apart).",
)
def generate(count: int, seed: int, offset: int, start: str) -> None:
    """Fill the works store with realistic sample works (streamed: millions are fine)."""
    first = parse_timestamp(start, what="--start")
    with works_store_from_env() as store:
        written = store.put_source(
            generate_works(count, seed=seed, start=first.astimezone(UTC), offset=offset)
        )
        total = store.count_source()
        where = store.describe()
    echo_json(
        {
            "generated": written,
            "seed": seed,
            "offset": offset,
            "store": where,
            "source_works": total,
        }
    )


@works.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(file: Path) -> None:
    """Load real source documents from an NDJSON file (one per line).

    The whole file is checked first: a bad line stops the load, naming the line, and nothing
    is written.
    """
    checked = sum(1 for _ in read_source_works(file))
    with works_store_from_env() as store:
        loaded = store.put_source(read_source_works(file))
        echo_json(
            {
                "loaded": loaded,
                "checked": checked,
                "store": store.describe(),
                "source_works": store.count_source(),
            }
        )


def scope_options(verb: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The options choosing one scope, as `mint`, `audit`, `sweep`, `impact` and `shadow` take
    them (`--source-identifiers ID...`, `--window-start/--window-end`, `--full`); `verb` words
    their help. The command receives the scope they chose as its `scope` argument."""
    options = [
        click.option(
            "--source-identifiers",
            "first_ids",
            multiple=True,
            metavar="ID...",
            help=f"Works to {verb}: sierra-system-number/b1161044x or Work[...] (several allowed).",
        ),
        click.argument("more_ids", nargs=-1, metavar=""),
        click.option(
            "--window-start",
            help=f"{verb.capitalize()} works indexed from this time (inclusive, ISO 8601).",
        ),
        click.option("--window-end", help="... up to this time (inclusive)."),
        click.option(
            "--full", is_flag=True, help=f"{verb.capitalize()} every work in the source index."
        ),
    ]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_scope(
            *,
            first_ids: tuple[str, ...],
            more_ids: tuple[str, ...],
            window_start: str | None,
            window_end: str | None,
            full: bool,
            **rest: object,
        ) -> None:
            # Identifiers after the first --source-identifiers count too; bare ones are refused.
            if more_ids and not first_ids:
                raise click.UsageError(f"unexpected arguments {' '.join(more_ids)}")
            command(scope=_scope(first_ids + more_ids, window_start, window_end, full), **rest)

        # Applied last to first, as stacked decorators are, so --help lists them in this order.
        for option in reversed(options):
            with_scope = option(with_scope)
        return with_scope

    return decorate


def _scope(
    ids: tuple[str, ...], window_start: str | None, window_end: str | None, full: bool
) -> WorkScope:
    chosen = [
        name
        for name, given in (
            ("--source-identifiers", bool(ids)),
            ("--window-start/--window-end", window_start is not None or window_end is not None),
            ("--full", full),
        )
        if given
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one scope: --source-identifiers ID..., --window-start T --window-end T, "
            f"or --full (got {', '.join(chosen) or 'none'})"
        )
    if ids:
        return IdsScope(ids)
    if full:
        return FullScope()
    if window_start is None or window_end is None:
        raise click.UsageError("a window needs both --window-start and --window-end")
    return WindowScope(window_start, window_end)


@click.command("mint", context_settings={"ignore_unknown_options": False})
@scope_options("mint")
@click.option(
    "--job-id",
    help="Recorded with inheritances in the registry. With --full it also names the run's "
    "checkpoint: run again with the same job id after an interruption to resume after the last "
    "written batch.",
)
@click.option(
    "--batch-size",
    type=int,
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Works per registry transaction: at least 1; above 5000 is lowered to 5000.",
)
def mint(scope: WorkScope, job_id: str | None, batch_size: int) -> None:
    """Mint every identifier in the works of one scope and write the identified works.

    Prints the run summary as JSON; exits 1 if any work failed (the summary says which and why;
    a resumed full run also counts the failures of its earlier attempts, `resumed_from`). A
    window run killed part-way resumes after its last written batch when the same window is
    run again (`resumed_from`); a window whose run finished is done whole again.
    """
    # The pipeline (the registry client: pymysql, tenacity) is imported when a run starts, so
    # `idminter mint --help` does not pay for it.
    from idminter_pipeline.works.pipeline import clamp_batch_size  # noqa: PLC0415
    from idminter_pipeline.works.runner import run_from_env  # noqa: PLC0415

    batch_size = clamp_batch_size(batch_size)
    check_job_id(job_id)
    listed = isinstance(scope, IdsScope)
    # This process is a works run from here on: collector settings for one (see gc_settings).
    with batch_run_collector():
        # A window or the full index may hold millions of works: count them, do not list them.
        summary = run_from_env(scope, job_id=job_id, batch_size=batch_size, record_processed=listed)
    report = summary.as_dict()
    report["processed"] = summary.processed if listed else summary.works_written
    echo_json(report)
    # A resumed full run answers for the whole job: works its earlier attempts failed count too.
    failed_before = summary.resumed_from.works_failed if summary.resumed_from else 0
    if summary.failed or failed_before:
        sys.exit(EXIT_SOME_WORKS_FAILED)


@contextlib.contextmanager
def _store_and_minter() -> Iterator[tuple[WorksStore, Minter]]:
    """The works store, which must exist, and a minter on the registry the environment names."""
    # Imported here: `idminter works generate|load` need no registry client.
    from idminter_pipeline.core.settings import DatabaseSettings  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415

    factory = connection_factory(DatabaseSettings.from_env())
    with works_store_from_env(existing=True) as store, Minter(factory) as minter:
        yield store, minter


@works.command("repair-succession")
@click.option(
    "--apply",
    is_flag=True,
    help="Rewrite the documents found (default: a dry run that only lists them).",
)
def repair_succession_command(apply: bool) -> None:
    """Find identified documents that are not their chain's newest record (written before
    succession ranks) and, with --apply, rewrite each with its holder's work.

    Prints a JSON report; exits 1 if a rewrite failed.
    """
    # Imported here: `idminter works generate|load` need neither the registry nor the pipeline.
    from idminter_pipeline.works.repair import repair_succession  # noqa: PLC0415
    from idminter_pipeline.works.runner import run_from_env  # noqa: PLC0415
    from idminter_pipeline.works.succession import SuccessionPolicy  # noqa: PLC0415

    policy = SuccessionPolicy.from_env()
    with batch_run_collector(), _store_and_minter() as (store, minter):
        report = repair_succession(
            store,
            minter,
            policy,
            apply=apply,
            run=lambda scope: run_from_env(scope, record_processed=False),
        )
    echo_report(report, fails=report.works_failed, exit_code=EXIT_SOME_WORKS_FAILED)


@works.command("audit")
@scope_options("audit")
def audit_command(scope: WorkScope) -> None:
    """Account for every work of one scope, from the stores themselves: written, superseded,
    failed, skipped, and the difference (missing or stale), named work by work (the first 100).

    Reads the source and identified stores and looks canonical IDs up in the registry; writes
    nothing. Prints a JSON report; exits 1 if any work is not accounted for.
    """
    # Imported here: `idminter works generate|load` need neither the registry nor pandas.
    from idminter_pipeline.works.audit import audit  # noqa: PLC0415

    with _store_and_minter() as (store, minter):
        report = audit(store, minter.lookup_ids, scope, inheritances=minter.inheritances)
    echo_report(report, fails=report.difference_count, exit_code=EXIT_SOME_WORKS_FAILED)


@works.command("sweep")
@scope_options("sweep")
def sweep_command(scope: WorkScope) -> None:
    """Mint the works of one scope whose identified document is missing or older than their
    source document, whatever window they fell in (usually --full).

    Prints a JSON report (what was found, the first 100 named, and what minting it did); exits
    1 if a work failed minting.
    """
    from idminter_pipeline.works.runner import run_from_env  # noqa: PLC0415
    from idminter_pipeline.works.sweeper import sweep  # noqa: PLC0415

    with batch_run_collector(), _store_and_minter() as (store, minter):
        report = sweep(
            store,
            minter.lookup_ids,
            scope,
            lambda ids: run_from_env(ids, record_processed=False),
            inheritances=minter.inheritances,
        )
    echo_report(report, fails=report.works_failed, exit_code=EXIT_SOME_WORKS_FAILED)


@works.command("show")
@click.argument("subject")
def show(subject: str) -> None:
    """Everything known about one work: SUBJECT is Work[system/value], system/value or a
    canonical ID.

    Prints, as JSON: the source document's identifiers with each one's canonical ID; the registry
    rows under the work's canonical ID with their provenance (inherited from what, when, which
    job); the succession chain and which work holds the identified document; and the stored
    identified document. Reads only. Exits 1 when neither the registry nor the store knows it.
    """
    from idminter_pipeline.works.diagnosis import diagnose, parse_subject  # noqa: PLC0415
    from idminter_pipeline.works.succession import SuccessionPolicy  # noqa: PLC0415

    parse_subject(subject)  # a malformed subject is named before any store or registry is opened
    policy = SuccessionPolicy.from_env()
    with _store_and_minter() as (store, minter):
        report = diagnose(subject, minter=minter, store=store, policy=policy)
    echo_json(report)
