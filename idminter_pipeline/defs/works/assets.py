"""`identified_works`: the works of one `indexed_at` window (or a range of them), minted."""

import os

import dagster as dg

from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.partitions import WORKS_PARTITIONS
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.defs.works.runs import mint_scope, summary_metadata
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE
from idminter_pipeline.works.stores import WindowScope

WORKS_GROUP = "works"
POOL_ASSET = "canonical_id_pool"
NO_FAILED_WORKS_CHECK = "no_failed_works"
# A backfill of many windows runs as several runs of at most this many windows each, so one run
# stays bounded (memory, duration, what a retry repeats). 96 windows of 15 minutes is a day.
MAX_PARTITIONS_PER_RUN = int(os.environ.get("IDMINTER_WORKS_MAX_PARTITIONS_PER_RUN") or 96)


class IdentifiedWorksConfig(dg.Config):
    batch_size: int = DEFAULT_BATCH_SIZE


@dg.asset(
    group_name=WORKS_GROUP,
    deps=[POOL_ASSET],
    partitions_def=WORKS_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
    kinds={"python", "elasticsearch"},
    check_specs=[dg.AssetCheckSpec(NO_FAILED_WORKS_CHECK, asset="identified_works")],
)
def identified_works(  # noqa: PLR0917 (Dagster injects resources by name)
    context: dg.AssetExecutionContext,
    config: IdentifiedWorksConfig,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    churn_guard: ChurnGuardResource,
    alerts: AlertsResource,
    downstream: DownstreamTopicResource,
) -> dg.MaterializeResult:
    """Every identifier in the works indexed in the window, minted, and the works written to the
    identified index. Re-running a window (or backfilling a range) re-mints idempotently."""
    window = context.partition_time_window
    scope = WindowScope(window.start, window.end, end_inclusive=False)
    summary = mint_scope(
        context,
        scope,
        works_store=works_store,
        registry_database=registry_database,
        churn_guard=churn_guard,
        alerts=alerts,
        batch_size=config.batch_size,
        job_id=context.run.run_id,
        downstream=downstream,
    )
    return dg.MaterializeResult(
        metadata=summary_metadata(summary),
        check_results=[
            dg.AssetCheckResult(
                check_name=NO_FAILED_WORKS_CHECK,
                passed=summary.failed == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "works_failed": summary.failed,
                    "failures_by_stage": dg.MetadataValue.json(summary.failures_by_stage),
                },
            )
        ],
    )
