"""Ops for the explicit-ids job (works named in run config) and its pool-recovery variant."""

import dagster as dg

from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.defs.works.runs import mint_scope, summary_metadata
from idminter_pipeline.registry.pool import replenish
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE
from idminter_pipeline.works.stores import IdsScope

POOL_ASSET = "canonical_id_pool"


class MintWorksByIdConfig(dg.Config):
    source_identifiers: list[str]
    job_id: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


@dg.op(ins={"after": dg.In(dg.Nothing)}, tags={"kind": "works"})
def mint_listed_works(  # noqa: PLR0917 (Dagster injects resources by name)
    context: dg.OpExecutionContext,
    config: MintWorksByIdConfig,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    churn_guard: ChurnGuardResource,
    alerts: AlertsResource,
    downstream: DownstreamTopicResource,
) -> dg.Output[dict]:
    """Mint the works named in run config (`Work[system/value]` or `system/value`)."""
    summary = mint_scope(
        context,
        IdsScope(tuple(config.source_identifiers)),
        works_store=works_store,
        registry_database=registry_database,
        churn_guard=churn_guard,
        alerts=alerts,
        batch_size=config.batch_size,
        job_id=config.job_id or context.run.run_id,
        record_processed=True,
        downstream=downstream,
    )
    return dg.Output(summary.as_dict(), metadata=summary_metadata(summary))


@dg.op(out=dg.Out(dg.Nothing))
def replenish_pool(
    context: dg.OpExecutionContext, registry_database: RegistryDatabase, id_pool: FreeIdPool
) -> None:
    """Top the free-ID pool up to its target, as the `canonical_id_pool` asset does."""
    report = replenish(registry_database.connection_factory(), id_pool.settings())
    context.log.info(report.summary())
    context.log_event(
        dg.AssetMaterialization(
            asset_key=POOL_ASSET,
            description="replenished before retrying a run that found the pool exhausted",
            metadata={
                "added": report.added,
                "free_before": report.free_before,
                "free_after": report.free_after,
                "target_free": report.target_free,
            },
        )
    )
