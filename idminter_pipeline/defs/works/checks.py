"""The works checks that read the stores rather than a run's summary: each window's works
accounted for (`works.audit`), evaluated on `identified_works` right after the window is minted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.resources import WorksStoreResource
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.audit import AuditReport, Outcome, audit, run_report_of
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.stores import WindowScope

EVERY_WORK_ACCOUNTED_FOR_CHECK = "every_work_accounted_for"
EVERY_WORK_ACCOUNTED_FOR_DESCRIPTION = (
    "The window's works in the source store equal those written + superseded + failed + "
    "skipped, counted from the source store, the identified store and the registry (not from "
    "the run's counters); the difference (missing or stale) is named work by work, the first "
    "100. The sweeper (swept_works) mints it."
)


def audit_windows(
    windows: Sequence[tuple[str, WindowScope, RunSummary]],
    *,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
) -> dict[str, AuditReport]:
    """Each window audited, the run's named failures taken as its word for those works."""
    audits: dict[str, AuditReport] = {}
    with (
        works_store.open() as store,
        Minter(registry_database.connection_factory()) as minter,
    ):
        for key, scope, summary in windows:
            audits[key] = audit(
                store,
                minter.lookup_ids,
                scope,
                reported=run_report_of(summary.failures),
                inheritances=minter.inheritances,
            )
    return audits


def audit_metadata(report: AuditReport) -> dict[str, Any]:
    return {
        "works_in_scope": report.in_scope,
        **{f"works_{outcome}": report.counts[outcome] for outcome in Outcome},
        "works_not_accounted_for": report.difference_count,
        "difference": dg.MetadataValue.json([w.as_dict() for w in report.difference]),
    }


def audit_evaluation(
    asset_key: dg.AssetKey,
    partition_key: str,
    report: AuditReport,
    target: Any = None,
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=EVERY_WORK_ACCOUNTED_FOR_CHECK,
        passed=report.difference_count == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.describe(),
        metadata=audit_metadata(report),
        partition=partition_key,
        target_materialization_data=target,
    )


def log_differences(log: Any, audits: Mapping[str, AuditReport]) -> None:
    """Each window's listed difference as a table in the run's logs."""
    for key, report in audits.items():
        if report.difference_count:
            log.warning(
                f"window {key}: {report.describe()}\n\n"
                + report.difference_frame().to_markdown(index=False)
            )
