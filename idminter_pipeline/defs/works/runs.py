"""What the works assets and ops share: run the pipeline over a scope, report it to Dagster."""

from typing import Any

import dagster as dg
import pandas as pd

from idminter_pipeline.alerts import Alert, Severity
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.errors import AlertDeliveryError
from idminter_pipeline.gc_settings import batch_run_collector
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.churn_guard import ChurnTrip
from idminter_pipeline.works.pipeline import RunSummary, WorksPipeline
from idminter_pipeline.works.stores import WorkScope

# The report attached to a run lists this many failures; the counts are always complete.
REPORTED_FAILURES = 500


def _send(alerts: AlertsResource, alert: Alert, log: Any) -> None:
    # An alert channel being down must not undo minting that already committed.
    try:
        alerts.send(alert, log=log)
    except AlertDeliveryError as error:
        log.warning(f"alert not delivered everywhere: {error}")


def mint_scope(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    scope: WorkScope,
    *,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    churn_guard: ChurnGuardResource,
    alerts: AlertsResource,
    batch_size: int,
    job_id: str | None,
    record_processed: bool = False,
    downstream: DownstreamTopicResource | None = None,
) -> RunSummary:
    def on_trip(trip: ChurnTrip) -> None:
        context.log.error(trip.reason)
        _send(alerts, trip.alert(job_id=job_id), context.log)

    context.log.info(f"minting {scope.describe()}")
    notifier = downstream.notifier() if downstream is not None else None
    with (
        batch_run_collector(),  # a Dagster works run is an entry point: see gc_settings
        works_store.open() as store,
        Minter(registry_database.connection_factory()) as minter,
    ):
        summary = WorksPipeline(
            store,
            minter,
            batch_size=batch_size,
            churn_guard=churn_guard.policy(),
            on_churn_trip=on_trip,
            record_processed=record_processed,
            notifier=notifier,
        ).run(scope, job_id=job_id)
    if summary.failed:
        _send(alerts, failures_alert(summary), context.log)
    return summary


def failures_alert(summary: RunSummary) -> Alert:
    stages = ", ".join(f"{stage}: {count}" for stage, count in summary.failures_by_stage.items())
    return Alert(
        title=f"{summary.failed} work(s) failed minting",
        what_happened=(
            f"Minting {summary.scope} read {summary.works_read} works; {summary.works_written} "
            f"were written and {summary.failed} failed ({stages}). First: "
            + "; ".join(f"{f.work_id} [{f.stage}] {f.detail}" for f in summary.failures[:3])
        ),
        what_to_do=(
            "Open the run's failure report. Fix the documents upstream (extract), register the "
            "missing predecessors or review the churn guard (mint), check the works store "
            "(write) or the downstream topic (notify); then re-run the same partition or ids: "
            "re-minting is idempotent."
        ),
        figures={
            "works_failed": summary.failed,
            **summary.failures_by_stage,
            "job_id": summary.job_id,
        },
        severity=Severity.WARNING,
    )


def failure_report(summary: RunSummary) -> str:
    if not summary.failures:
        return "No work failed."
    frame = pd.DataFrame(
        [f.as_dict() for f in summary.failures[:REPORTED_FAILURES]],
        columns=["sourceIdentifier", "stage", "detail"],
    )
    shown = len(frame)
    header = f"{summary.failed} failed work(s)"
    if summary.failed > shown:
        header += f"; the first {shown} are listed"
    return f"{header}\n\n" + frame.to_markdown(index=False)


def summary_metadata(summary: RunSummary) -> dict[str, Any]:
    return {
        "scope": summary.scope,
        "store": summary.store,
        "works_read": summary.works_read,
        "works_written": summary.works_written,
        "works_failed": summary.failed,
        "works_notified": summary.works_notified,
        "identifiers_found": summary.identifiers_found,
        "identifiers_existing": summary.existing,
        "identifiers_inherited": summary.inherited,
        "identifiers_minted": summary.minted,
        "failures_by_stage": dg.MetadataValue.json(summary.failures_by_stage),
        "churn_guard_trips": dg.MetadataValue.json([t.reason for t in summary.churn_trips]),
        "mint_calls": summary.mint_calls,
        "duration_seconds": round(summary.duration_seconds, 3),
        "failure_report": dg.MetadataValue.md(failure_report(summary)),
    }
