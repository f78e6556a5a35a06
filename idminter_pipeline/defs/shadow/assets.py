"""`shadow_comparison`: each `indexed_at` window compared with the legacy minter's output.

Partitioned like `identified_works`, one partition per window: each records the window's count
of works per category (plain numbers, so a week of windows plots at a glance) and its
unexpected differences, and its `no_unexpected_differences` check fails when there is any (and
one alert per run names the windows). Nothing is written to the registry or to any store
(`works.shadow`).
"""

from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.shadow.resources import ShadowReferenceResource
from idminter_pipeline.defs.works.assets import MAX_PARTITIONS_PER_RUN, STORE_KIND
from idminter_pipeline.defs.works.partitions import WORKS_PARTITIONS
from idminter_pipeline.defs.works.resources import WorksStoreResource
from idminter_pipeline.defs.works.runs import send_alert_quietly
from idminter_pipeline.works.shadow import Category, ShadowReport, shadow_run
from idminter_pipeline.works.stores import WindowScope

SHADOW_GROUP = "shadow"
LEGACY_MIGRATION_ASSET = "legacy_registry_migration"
NO_UNEXPECTED_DIFFERENCES_CHECK = "no_unexpected_differences"
# A partition's page lists this many unexpected differences; the counts are always complete.
REPORTED_DIFFERENCES = 100
SHADOW_ALERT_SOURCE = "idminter-pipeline/shadow_comparison"


def report_metadata(report: ShadowReport) -> dict[str, Any]:
    """One window's figures: the count per category, as plain numbers the UI plots."""
    figures = report.as_dict()
    metadata: dict[str, Any] = {category.value: report.counts[category] for category in Category}
    metadata.update(
        {
            "works_read": figures["works_read"],
            "would_mint_in_reference": report.would_mint_in_reference,
            "registry_table": figures["registry"]["table"],
            "pending_legacy_changes": figures["registry"]["pending_legacy_changes"] or 0,
            "reference": report.reference,
            "unexpected_differences": dg.MetadataValue.json(
                figures["unexpected_differences"][:REPORTED_DIFFERENCES]
            ),
            "duration_seconds": figures["duration_seconds"],
        }
    )
    return metadata


def _evaluation(partition_key: str, report: ShadowReport) -> dg.AssetCheckEvaluation:
    unexpected = report.unexpected_works
    first = report.unexpected[0] if report.unexpected else None
    description = (
        f"No unexpected difference in window {partition_key}."
        if not unexpected
        else f"{unexpected:,} work(s) of window {partition_key} differ unexpectedly"
        + (f"; first: {first.work} at {first.path or '(root)'}" if first else "")
    )
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("shadow_comparison"),
        check_name=NO_UNEXPECTED_DIFFERENCES_CHECK,
        passed=unexpected == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            Category.DIFFER_UNEXPECTED.value: unexpected,
            "unexpected_differences": dg.MetadataValue.json(
                [d.as_dict() for d in report.unexpected[:REPORTED_DIFFERENCES]]
            ),
        },
        partition=partition_key,
    )


def unexpected_differences_alert(
    reports: Sequence[tuple[str, ShadowReport]], *, run_id: str
) -> Alert:
    """One alert per run for the windows whose `no_unexpected_differences` check failed."""
    failing = [(key, report) for key, report in reports if report.unexpected_works]
    unexpected = sum(report.unexpected_works for _, report in failing)
    per_window = "; ".join(f"{key}: {report.unexpected_works:,}" for key, report in failing[:10])
    first_key, first_report = failing[0]
    first = first_report.unexpected[0] if first_report.unexpected else None
    keys = [key for key, _ in failing]
    return Alert(
        title="Shadow comparison found unexpected differences",
        what_happened=(
            f"Run {run_id} compared {len(reports)} window(s) with the legacy minter's output: "
            f"{unexpected:,} work(s) differ other than by an inherited root ID, in windows "
            f"{per_window}"
            + (f". First: {first.work} at {first.path or '(root)'} ({first_key})" if first else "")
            + f". The {NO_UNEXPECTED_DIFFERENCES_CHECK} check failed on each of those windows; "
            "nothing was written anywhere."
        ),
        what_to_do=(
            "Open each window's shadow_comparison partition in Dagster: its "
            "unexpected_differences list the work, the JSON path and both values. Explain or fix "
            "each cause, then backfill the window: cutover waits until every window passes."
        ),
        figures={
            Category.DIFFER_UNEXPECTED.value: unexpected,
            "windows_compared": len(reports),
            "windows_with_unexpected_differences": len(failing),
        },
        severity=Severity.WARNING,
        source=SHADOW_ALERT_SOURCE,
        run_id=run_id,
        partition=keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}",
    )


@dg.asset(
    metadata=release_metadata(),
    group_name=SHADOW_GROUP,
    deps=[LEGACY_MIGRATION_ASSET],
    partitions_def=WORKS_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
    kinds={"python", STORE_KIND},
    description=(
        "What this minter would assign to the works of a window, compared work by work with "
        "the legacy minter's output (agree, differ_expected, differ_unexpected, "
        "not_in_reference, would_mint). Writes nothing. One partition per window."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            NO_UNEXPECTED_DIFFERENCES_CHECK,
            asset="shadow_comparison",
            partitions_def=WORKS_PARTITIONS,
            description=(
                "No work of the window differs from the legacy output other than by an "
                "inherited root ID (differ_unexpected is 0)."
            ),
        )
    ],
)
def shadow_comparison(
    context: dg.AssetExecutionContext,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    shadow_reference: ShadowReferenceResource,
    alerts: AlertsResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    """Every window of the run compared on its own, in order."""
    reports: list[tuple[str, ShadowReport]] = []
    with (
        batch_run_collector(),
        works_store.open(read_only=True) as store,
        shadow_reference.open(works_store) as reference,
    ):
        for key in context.partition_keys:
            window = WORKS_PARTITIONS.time_window_for_partition_key(key)
            scope = WindowScope(window.start, window.end, end_inclusive=False)
            report = shadow_run(store, reference, registry_database.connection_factory(), scope)
            context.log.info(
                f"window {key}: " + ", ".join(f"{c.value} {report.counts[c]:,}" for c in Category)
            )
            reports.append((key, report))
    for key, report in reports:
        context.add_asset_metadata(report_metadata(report), partition_key=key)
    yield dg.MaterializeResult()
    check_key = dg.AssetCheckKey(context.asset_key, NO_UNEXPECTED_DIFFERENCES_CHECK)
    if check_key in context.selected_asset_check_keys:
        for key, report in reports:
            yield _evaluation(key, report)
        if any(report.unexpected_works for _, report in reports):
            alert = unexpected_differences_alert(reports, run_id=context.run.run_id)
            send_alert_quietly(alerts, alert, context.log)
        yield dg.Output(
            None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key)
        )
