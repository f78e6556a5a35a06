"""Ops for the explicit-ids job (works named in run config) and its pool-recovery variant."""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field, field_validator

from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.resources import REGISTRY_POOL, RegistryDatabase
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.defs.works.runs import (
    FailedWorksError,
    WorksResources,
    mint_scope,
    summary_metadata,
)
from idminter_pipeline.registry.pool import replenish
from idminter_pipeline.works.documents import work_document_id
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MIN_BATCH_SIZE
from idminter_pipeline.works.stores import IdsScope

POOL_ASSET = "canonical_id_pool"


class MintWorksByIdConfig(dg.Config):
    """The launchpad's config for the explicit-ids jobs; checked before a run is created."""

    source_identifiers: list[str] = Field(
        min_length=1,
        description="Works to mint: `Work[system/value]` or `system/value`, at least one.",
    )
    job_id: str | None = Field(
        default=None, description="Recorded with what the run mints; the run id when unset."
    )
    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE,
        ge=MIN_BATCH_SIZE,
        description=(
            f"Works per registry transaction, at least {MIN_BATCH_SIZE}; larger values than "
            f"{MAX_BATCH_SIZE:,} are clamped."
        ),
    )

    @field_validator("source_identifiers")
    @classmethod
    def _each_is_a_work_identifier(cls, values: list[str]) -> list[str]:
        for value in values:
            work_document_id(value)  # InvalidSourceIdentifierError names the value
        return values


@dg.config_mapping
def listed_works_config(config: MintWorksByIdConfig) -> dg.RunConfig:
    """`source_identifiers` (at least one, each a work identifier), optional `job_id` and
    `batch_size`. Validated when a run is launched, not when its step starts: a mistake in the
    launchpad refuses the launch, and no run is created."""
    return dg.RunConfig(ops={"mint_listed_works": config})


@dg.op(ins={"after": dg.In(dg.Nothing)}, tags={"kind": "works"}, pool=REGISTRY_POOL)
def mint_listed_works(  # noqa: PLR0917 (Dagster injects resources by name)
    context: dg.OpExecutionContext,
    config: MintWorksByIdConfig,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    churn_guard: ChurnGuardResource,
    alerts: AlertsResource,
    downstream: DownstreamTopicResource,
) -> Iterator[dg.Output]:
    """Mint the works named in run config (`Work[system/value]` or `system/value`).

    Its output is the run summary. If a work failed, the op fails after recording it, so the run
    is not green (the failed works are in the output's metadata and the run's logs).
    """
    summary = mint_scope(
        context,
        IdsScope(tuple(config.source_identifiers)),
        WorksResources(works_store, registry_database, churn_guard, alerts, downstream),
        batch_size=config.batch_size,
        job_id=config.job_id or context.run.run_id,
        record_processed=True,
    )
    yield dg.Output(summary.as_dict(), metadata=summary_metadata(summary, run_id=context.run_id))
    if summary.failed:
        raise FailedWorksError(
            description=(
                f"{summary.failed} of {summary.works_read} listed works failed minting; the "
                "others were written. See the output's failed_works table and the run's logs."
            ),
            metadata={
                "works_failed": summary.failed,
                "failures_by_stage": dg.MetadataValue.json(summary.failures_by_stage),
            },
            allow_retries=False,
        )


@dg.op(out=dg.Out(dg.Nothing), pool=REGISTRY_POOL)
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
                # `free` as the asset records it, so the pool's plot has this top-up too.
                "free": report.free_after,
                "ids_added": report.added,
                "free_before": report.free_before,
                "target_free": report.target_free,
            },
        )
    )
