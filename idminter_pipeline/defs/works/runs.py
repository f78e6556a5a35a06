"""What the works assets and ops share: run the pipeline over a scope or over windows one at a time,
and report each window's figures, failed works and check result to Dagster.

A multi-window run (a backfill) runs the pipeline once per window, each window with its own scope
`[start, end)` and its own summary, so every partition gets exactly its own figures, whether it
was minted alone or in a range (docs/design/works-pipeline.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd

from idminter_pipeline.core.alerts import Alert, Severity, cut_message
from idminter_pipeline.core.errors import AlertDeliveryError
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.works.checkpoints import RunCheckpoints
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.restore import read_restore_state, restore_guard
from idminter_pipeline.works.run_summary import RunSummary, WorkFailure
from idminter_pipeline.works.runner import open_works_pipeline
from idminter_pipeline.works.stores import WindowScope, WorkScope

# A partition's page lists this many failed works; the run's logs list every one the summary
# kept (`works.run_summary.MAX_RECORDED_FAILURES`), and the counts are always complete.
REPORTED_FAILURES = 100
# Failed works per log message, so a window with thousands of them logs readable chunks.
LOGGED_FAILURES_PER_MESSAGE = 200
# A failure's reason as shown in a table cell.
MAX_REASON_LENGTH = 300
FAILED_WORKS_SOURCE = "idminter-pipeline/identified_works"
FAILURE_COLUMNS = ["work_id", "stage", "reason"]
# A multi-window run logs the window it starts at most this often (and always the first and the
# last): every log line is an event Dagster stores, about a millisecond each, which a day of
# 15-minute windows of a few works each would pay 96 times. Each window's figures and check are
# recorded on its partition whatever is logged, and failed works are always logged.
PROGRESS_LOG_SECONDS = 10.0


class FailedWorksError(dg.Failure):
    """Works failed in a run that otherwise ran to the end: raised last, so the run is not green.

    The figures, the failure report and the alert are already recorded when it is raised.
    """


def send_alert_quietly(alerts: AlertsResource, alert: Alert, log: Any) -> None:
    # An alert channel being down must not undo minting that already committed.
    try:
        alerts.send(alert, log=log)
    except AlertDeliveryError as error:
        log.warning(f"alert not delivered everywhere: {error}")


@dataclass(frozen=True)
class WindowResult:
    """One window of a run: its partition key and the summary of minting exactly its works."""

    partition_key: str
    summary: RunSummary


# The registry's newest assignment when a works run ended (minting windows, by id, sweeping; to
# its end or stopped part-way, its written works are published): an observation of
# identified_works, and on each window's materialization. What the next run's guard compares a
# possibly restored registry against.
NEWEST_ASSIGNMENT_KEY = "registry_newest_assignment"
IDENTIFIED_WORKS_KEY = dg.AssetKey("identified_works")
# How far back the guard looks for an event carrying the figure: every run's observation carries
# it unless the registry could not be read as the run ended.
RECORDED_EVENTS_SEARCHED = 100


def _recorded_newest_assignment(records: Any) -> datetime | None:
    for record in records:
        event = record.asset_materialization or record.asset_observation
        value = event.metadata.get(NEWEST_ASSIGNMENT_KEY) if event is not None else None
        if isinstance(value, dg.TextMetadataValue):
            return datetime.fromisoformat(value.text)
    return None


def published_until(instance: dg.DagsterInstance) -> datetime | None:
    """The registry's newest assignment as the latest works run recorded it."""
    found = [
        _recorded_newest_assignment(
            fetch(IDENTIFIED_WORKS_KEY, limit=RECORDED_EVENTS_SEARCHED).records
        )
        for fetch in (instance.fetch_materializations, instance.fetch_observations)
    ]
    recorded = [value for value in found if value is not None]
    return max(recorded) if recorded else None


def newest_assignment_metadata(registry_database: RegistryDatabase) -> dict[str, Any]:
    newest = read_restore_state(registry_database.connection_factory()).newest_assignment
    return {NEWEST_ASSIGNMENT_KEY: dg.MetadataValue.text(newest.isoformat())} if newest else {}


def observe_newest_assignment(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, registry_database: RegistryDatabase
) -> None:
    """Record the registry's newest assignment for the guard as an observation of
    identified_works. Quietly: an error that stopped the run is the one to raise."""
    try:
        metadata = newest_assignment_metadata(registry_database)
    except Exception as error:
        context.log.warning(f"the registry's newest assignment was not recorded: {error}")
        return
    if metadata:
        context.log_event(dg.AssetObservation(asset_key=IDENTIFIED_WORKS_KEY, metadata=metadata))


def refuse_minting_on_a_restored_registry(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, registry_database: RegistryDatabase
) -> None:
    """Fail the run, minting nothing, when the registry is older than what earlier runs
    published and no recovery ran since (`works.restore`)."""
    until = published_until(context.instance)
    if until is not None:
        restore_guard(read_restore_state(registry_database.connection_factory()), until)


@dataclass(frozen=True)
class WorksResources:
    """The resources a works run mints with, as the asset or op received them."""

    works_store: WorksStoreResource
    registry_database: RegistryDatabase
    churn_guard: ChurnGuardResource
    alerts: AlertsResource
    downstream: DownstreamTopicResource | None = None

    @contextmanager
    def open_pipeline(
        self,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        *,
        batch_size: int,
        job_id: str | None,
        record_processed: bool,
    ) -> Iterator[WorksPipeline]:
        """The works pipeline (`works.runner`) over these resources, with the run's collector
        settings (a Dagster works run is an entry point: see gc_settings)."""
        refuse_minting_on_a_restored_registry(context, self.registry_database)
        downstream = self.downstream
        try:
            with (
                batch_run_collector(),
                open_works_pipeline(
                    self.works_store.open,
                    self.registry_database.connection_factory(),
                    churn_guard=self.churn_guard.policy(),
                    alert_channels=self.alerts.channels(context.log),
                    log=context.log,
                    job_id=job_id,
                    batch_size=batch_size,
                    record_processed=record_processed,
                    notifier=downstream.notifier() if downstream is not None else None,
                ) as pipeline,
            ):
                yield pipeline
        finally:
            # Whatever ended the run: what it wrote is published.
            observe_newest_assignment(context, self.registry_database)


def mint_scope(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    scope: WorkScope,
    resources: WorksResources,
    *,
    batch_size: int,
    job_id: str | None,
    record_processed: bool = False,
) -> RunSummary:
    """Mint one scope (the explicit-ids job); failed works are logged and alerted."""
    context.log.info(f"minting {scope.describe()}")
    with resources.open_pipeline(
        context, batch_size=batch_size, job_id=job_id, record_processed=record_processed
    ) as pipeline:
        summary = pipeline.run(scope, job_id=job_id)
    log_failures(context, summary, label=scope.describe())
    if summary.failed:
        alert = failed_works_alert([(None, summary)], run_id=context.run.run_id)
        send_alert_quietly(resources.alerts, alert, context.log)
    return summary


def mint_windows(
    context: dg.AssetExecutionContext,
    windows: Sequence[tuple[str, WindowScope]],
    resources: WorksResources,
    *,
    batch_size: int,
    job_id: str | None,
) -> Iterator[WindowResult]:
    """Mint each window in turn, yielding its result as soon as it is written.

    One store and one registry connection serve every window. An error that stops the run
    (pool exhausted, registry or store unreachable) propagates after the windows already yielded,
    which are minted and written. Each window keeps a checkpoint (`works.checkpoints`): a run of
    a window whose earlier run was killed part-way resumes after that run's last written batch,
    and says so in the log and the partition's `batches_resumed`.
    """
    with (
        resources.open_pipeline(
            context, batch_size=batch_size, job_id=job_id, record_processed=False
        ) as pipeline,
        RunCheckpoints(resources.registry_database.connection_factory()) as checkpoints,
    ):
        logged_at: float | None = None
        for number, (partition_key, scope) in enumerate(windows, start=1):
            now = time.monotonic()
            if (
                logged_at is None
                or now - logged_at >= PROGRESS_LOG_SECONDS
                or number == len(windows)
            ):
                logged_at = now
                context.log.info(
                    f"minting window {partition_key} ({number:,} of {len(windows):,}): "
                    f"{scope.describe()}"
                )
            summary = pipeline.run(scope, job_id=job_id, checkpoints=checkpoints)
            if summary.resumed_from is not None:
                resumed = summary.resumed_from
                context.log.info(
                    f"window {partition_key} resumed after {resumed.position.describe()}: "
                    f"{resumed.batches:,} batch(es) ({resumed.works_read:,} works) written by an "
                    f"earlier run of it were not redone; this run read {summary.works_read:,}"
                )
            if summary.checkpoint_held_elsewhere:
                context.log.warning(
                    f"window {partition_key}: another run of the window holds its checkpoint; "
                    "this run minted the whole window without one (idempotently)"
                )
            log_failures(context, summary, label=f"window {partition_key}")
            yield WindowResult(partition_key, summary)


# --- what Dagster records ----------------------------------------------------------------------


def _reason(failure: WorkFailure) -> str:
    return cut_message(failure.detail, MAX_REASON_LENGTH)


def failure_rows(summary: RunSummary, limit: int | None = None) -> list[dict[str, str]]:
    failures = summary.failures if limit is None else summary.failures[:limit]
    return [{"work_id": f.work_id, "stage": str(f.stage), "reason": _reason(f)} for f in failures]


def failed_works_table(summary: RunSummary) -> dg.TableMetadataValue:
    """The first `REPORTED_FAILURES` failed works: what a partition's page shows."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in failure_rows(summary, REPORTED_FAILURES)],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in FAILURE_COLUMNS]),
    )


def failures_listed(summary: RunSummary, run_id: str) -> str:
    """Says how much of the list the table holds and where the rest is."""
    if not summary.failed:
        return "No work failed."
    shown = min(len(summary.failures), REPORTED_FAILURES)
    if summary.failed <= shown:
        return f"All {summary.failed:,} failed work(s) are listed; the run's logs list them too."
    logged = len(summary.failures)
    where = (
        f"the logs of run {run_id} list all of them"
        if logged == summary.failed
        else f"the logs of run {run_id} list the first {logged:,}"
    )
    return f"The first {shown:,} of {summary.failed:,} failed works are listed; {where}."


def log_failures(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, summary: RunSummary, *, label: str
) -> None:
    """Every failed work the summary kept, in the run's logs, a few hundred per message."""
    if not summary.failed:
        return
    rows = failure_rows(summary)
    for start in range(0, len(rows), LOGGED_FAILURES_PER_MESSAGE):
        chunk = rows[start : start + LOGGED_FAILURES_PER_MESSAGE]
        frame = pd.DataFrame(chunk, columns=FAILURE_COLUMNS)
        context.log.warning(
            f"{label}: failed works {start + 1:,} to {start + len(chunk):,} of "
            f"{summary.failed:,}\n\n" + frame.to_markdown(index=False)
        )
    if summary.failed > len(rows):
        context.log.warning(
            f"{label}: {summary.failed - len(rows):,} more failed works are counted but not "
            "listed (the run keeps the first ones in full)"
        )


def summary_metadata(summary: RunSummary, *, run_id: str) -> dict[str, Any]:
    """One window's (or one explicit-ids run's) figures: plain numbers, so the UI plots them."""
    resumed = summary.resumed_from
    return {
        "scope": summary.scope,
        "store": summary.store,
        "works_read": summary.works_read,
        "works_written": summary.works_written,
        "works_failed": summary.failed,
        "works_notified": summary.works_notified,
        "works_superseded": summary.works_superseded,
        "succession_conflicts": len(summary.succession_conflicts),
        "identifiers_found": summary.identifiers_found,
        "identifiers_existing": summary.existing,
        "identifiers_inherited": summary.inherited,
        "identifiers_minted": summary.minted,
        "failures_by_stage": dg.MetadataValue.json(summary.failures_by_stage),
        "failed_works": failed_works_table(summary),
        "failed_works_listed": failures_listed(summary, run_id),
        "superseded_works": dg.MetadataValue.json(
            [s.as_dict() for s in summary.superseded[:REPORTED_FAILURES]]
        ),
        "succession_conflict_list": dg.MetadataValue.json(conflict_rows(summary)),
        "churn_guard_trips": dg.MetadataValue.json([t.reason for t in summary.churn_trips]),
        "mint_calls": summary.mint_calls,
        "duration_seconds": round(summary.duration_seconds, 3),
        # A resumed window: the batches (and their works) an earlier, killed run of it wrote,
        # which this run skipped; the figures above are this run's own.
        "batches_resumed": resumed.batches if resumed else 0,
        "works_resumed": resumed.works_read if resumed else 0,
        "resumed_after": resumed.position.describe() if resumed else "",
    }


def _stages(summary: RunSummary) -> str:
    return ", ".join(
        f"{stage}: {count}" for stage, count in summary.failures_by_stage.items() if count
    )


def check_description(result: WindowResult) -> str:
    summary = result.summary
    if not summary.failed and summary.works_superseded:
        return (
            f"No work of window {result.partition_key} failed: {summary.works_written:,} of "
            f"{summary.works_read:,} written, {summary.works_superseded:,} superseded (a newer "
            "record of their chain holds the document)."
        )
    if not summary.failed:
        return f"All {summary.works_read:,} works of window {result.partition_key} were written."
    first = summary.failures[0] if summary.failures else None
    return (
        f"{summary.failed:,} of {summary.works_read:,} works failed in window "
        f"{result.partition_key} ({_stages(summary)})"
        + (f"; first: {first.work_id} [{first.stage}] {_reason(first)}" if first else "")
        + ". It passes again after a clean re-run of this window."
    )


def check_metadata(result: WindowResult) -> dict[str, Any]:
    summary = result.summary
    return {
        "works_read": summary.works_read,
        "works_failed": summary.failed,
        "failures_by_stage": dg.MetadataValue.json(summary.failures_by_stage),
        "first_failed_works": dg.MetadataValue.json(failure_rows(summary, 5)),
    }


def conflict_rows(summary: RunSummary, limit: int = REPORTED_FAILURES) -> list[dict[str, Any]]:
    return [c.as_dict() for c in list(summary.succession_conflicts.values())[:limit]]


def conflict_check_description(result: WindowResult) -> str:
    conflicts = list(result.summary.succession_conflicts.values())
    if not conflicts:
        return f"No work of window {result.partition_key} met a succession conflict."
    return (
        f"{len(conflicts):,} canonical ID(s) met in window {result.partition_key} have two or "
        f"more live successors; first: {conflicts[0].describe()}. The holder is chosen by the "
        "tie rule; it passes again after a re-run of this window once the registry shows one "
        "successor per chain."
    )


def _partitions_text(keys: Sequence[str], shown: int = 5) -> str:
    text = ", ".join(keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def failed_works_alert(results: Sequence[tuple[str | None, RunSummary]], *, run_id: str) -> Alert:
    """One alert per run, however many windows had failed works."""
    failing = [(key, summary) for key, summary in results if summary.failed]
    failed = sum(summary.failed for _, summary in failing)
    read = sum(summary.works_read for _, summary in results)
    stages: dict[str, int] = {}
    for _, summary in failing:
        for stage, count in summary.failures_by_stage.items():
            stages[stage] = stages.get(stage, 0) + count
    keys = [key for key, _ in failing if key is not None]
    first_key, first_summary = failing[0]
    first = first_summary.failures[0] if first_summary.failures else None
    per_window = "; ".join(
        f"{key}: {summary.failed} of {summary.works_read}" for key, summary in failing[:10]
    )
    return Alert(
        title=f"{failed} work(s) failed minting",
        runbook="{count} work(s) failed minting",
        what_happened=(
            f"Run {run_id} read {read:,} works; {failed:,} failed ("
            + ", ".join(f"{stage}: {count}" for stage, count in stages.items() if count)
            + ")"
            + (f", in windows {per_window}" if keys else "")
            + ". The good works were written. The run is marked failed, and each window's "
            "no_failed_works check stays failed until a clean re-run of that window."
        ),
        what_to_do=(
            "Open the partition (or the run) in Dagster: its failed_works table lists work id, "
            "stage and reason, and the run's logs list all of them. Fix the documents upstream "
            "(extract), register the missing predecessors or review the churn "
            "guard (mint), check the works store (write) or the downstream topic (notify); then "
            "re-run the same partition or ids: re-minting is idempotent."
        ),
        figures={
            "works_failed": failed,
            "works_read": read,
            **{f"failed_at_{stage}": count for stage, count in stages.items() if count},
            "windows_with_failures": len(keys),
        },
        severity=Severity.WARNING,
        source=FAILED_WORKS_SOURCE,
        cause=(
            f"{first.work_id} failed at stage {first.stage}: {_reason(first)}"
            + (f" (and {failed - 1:,} more)" if failed > 1 else "")
            if first
            else f"{failed:,} works failed"
        ),
        run_id=run_id,
        partition=_partitions_text(keys) if keys else first_key,
    )
