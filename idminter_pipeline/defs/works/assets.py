"""`identified_works`: the works of one `indexed_at` window (or a range of them), minted.

Each window of a run is minted on its own and reported on its own partition: its figures, its
failed works (work id, stage, reason) and its `no_failed_works` check. The check is a blocking
ERROR check: a window with a failed work fails it (until a clean re-run of that window), the run
ends as failed, and assets downstream of `identified_works` do not run in it.
"""

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from pydantic import Field

from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.core.settings import env_int
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.config import positive_int_field
from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import REGISTRY_POOL, RegistryDatabase
from idminter_pipeline.defs.retries import retried_on_registry_outage
from idminter_pipeline.defs.works.checks import (
    EVERY_WORK_ACCOUNTED_FOR_CHECK,
    EVERY_WORK_ACCOUNTED_FOR_DESCRIPTION,
    audit_evaluation,
    audit_windows,
    log_differences,
)
from idminter_pipeline.defs.works.partitions import WINDOW_MINUTES, WORKS_PARTITIONS
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    ImpactCandidateResource,
    WorksStoreResource,
    works_store_kind,
)
from idminter_pipeline.defs.works.runs import (
    FailedWorksError,
    WindowResult,
    WorksResources,
    check_description,
    check_metadata,
    conflict_check_description,
    conflict_rows,
    failed_works_alert,
    mint_scope,
    mint_windows,
    newest_assignment_metadata,
    send_alert_quietly,
    summary_metadata,
)
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.audit import AuditReport, difference_alert
from idminter_pipeline.works.impact import Fate, assess_impact, impact_alert
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MIN_BATCH_SIZE
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.stores import FullScope, IdsScope, WindowScope, WorkScope
from idminter_pipeline.works.sweeper import found_works_alert, sweep

WORKS_GROUP = "works"
POOL_ASSET = "canonical_id_pool"
NO_FAILED_WORKS_CHECK = "no_failed_works"
NO_SUCCESSION_CONFLICTS_CHECK = "no_succession_conflicts"
# A backfill of many windows runs as several runs of at most this many windows each, so one run
# stays bounded (memory, duration, what a retry repeats). 96 windows of 15 minutes is a day.
MAX_PARTITIONS_PER_RUN = env_int(None, "IDMINTER_WORKS_MAX_PARTITIONS_PER_RUN", 96, minimum=1)
# The schedule mints a window a few minutes after it closes, so a materialization is due about
# every window; three windows without one means the schedule stopped or a window is stuck.
FRESHNESS_FAIL_MINUTES = env_int(
    None, "IDMINTER_WORKS_FRESHNESS_FAIL_MINUTES", 3 * WINDOW_MINUTES, minimum=1
)
WORKS_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=FRESHNESS_FAIL_MINUTES),
    warn_window=timedelta(minutes=max(1, FRESHNESS_FAIL_MINUTES * 2 // 3)),
)
STORE_KIND = works_store_kind()
STORE_DESCRIPTIONS = {
    "sqlite": "the embedded SQLite works store (WORKS_STORE_PATH, default .local/works.sqlite3)",
    "elasticsearch": (
        "Elasticsearch (ELASTICSEARCH_URL): the works-source index, written to works-identified"
    ),
}


class IdentifiedWorksConfig(dg.Config):
    """The asset's run config, typed (`IDENTIFIED_WORKS_CONFIG_SCHEMA` is what Dagster checks)."""

    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=MIN_BATCH_SIZE)


# The launchpad's schema: a batch size below 1 is refused when the run is launched, not in it.
IDENTIFIED_WORKS_CONFIG_SCHEMA = {
    "batch_size": positive_int_field(
        DEFAULT_BATCH_SIZE,
        f"Works per registry transaction, at least {MIN_BATCH_SIZE}; larger values than "
        f"{MAX_BATCH_SIZE:,} are clamped.",
    )
}


def _record_windows(
    context: dg.AssetExecutionContext,
    results: list[WindowResult],
    audits: Mapping[str, AuditReport],
    *,
    as_events: bool,
    run_metadata: dict[str, Any] | None = None,
) -> None:
    """Each window's figures on its own partition.

    Normally they become the metadata of that partition's materialization. When the run stops
    part-way, the windows finished before are logged as materializations of their partitions
    (their works are minted and written), so the UI shows what happened to each.
    """
    run_id = context.run.run_id
    for result in results:
        metadata = {**summary_metadata(result.summary, run_id=run_id), **(run_metadata or {})}
        if as_events:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key, partition=result.partition_key, metadata=metadata
                )
            )
        else:
            context.add_asset_metadata(metadata, partition_key=result.partition_key)
    if as_events and _any_check_selected(context):
        # After the materializations, so each evaluation can point at its partition's.
        targets = _target_materializations(context)
        for result in results:
            target = targets.get(result.partition_key)
            for evaluation in _evaluations(context, result, target, audits):
                context.log_event(evaluation)


_CHECKS = (NO_FAILED_WORKS_CHECK, NO_SUCCESSION_CONFLICTS_CHECK, EVERY_WORK_ACCOUNTED_FOR_CHECK)


def _check_key(
    context: dg.AssetExecutionContext, name: str = NO_FAILED_WORKS_CHECK
) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(context.asset_key, name)


def _check_selected(context: dg.AssetExecutionContext, name: str = NO_FAILED_WORKS_CHECK) -> bool:
    return _check_key(context, name) in context.selected_asset_check_keys


def _any_check_selected(context: dg.AssetExecutionContext) -> bool:
    return any(_check_selected(context, name) for name in _CHECKS)


def _evaluations(
    context: dg.AssetExecutionContext,
    result: WindowResult,
    target: AssetCheckEvaluationTargetMaterializationData | None,
    audits: Mapping[str, AuditReport],
) -> Iterator[dg.AssetCheckEvaluation]:
    """The window's evaluation of each selected check, pointing at `target`, its partition's
    materialization in this run."""
    if _check_selected(context):
        yield _evaluation(context, result, target)
    if _check_selected(context, NO_SUCCESSION_CONFLICTS_CHECK):
        yield _conflict_evaluation(context, result, target)
    report = audits.get(result.partition_key)
    if report is not None:
        yield audit_evaluation(context.asset_key, result.partition_key, report, target)


def _target_materializations(
    context: dg.AssetExecutionContext,
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """This run's materialization of each of its partitions, which the evaluations are about.

    One query for the whole run: a query per partition (what Dagster does for a check result)
    cost more than a millisecond a window. A partition missing here (not stored yet, as with an
    executor that writes events from another process) gets no link rather than a link to an
    older materialization.
    """
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    targets = {}
    for record in records:  # oldest first: a later materialization of a partition wins
        if record.asset_key != context.asset_key or record.partition_key is None:
            continue
        targets[record.partition_key] = AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
    return targets


def _evaluation(
    context: dg.AssetExecutionContext,
    result: WindowResult,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=context.asset_key,
        check_name=NO_FAILED_WORKS_CHECK,
        passed=result.summary.failed == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=check_description(result),
        metadata=check_metadata(result),
        blocking=True,
        partition=result.partition_key,
        target_materialization_data=target,
    )


def _conflict_evaluation(
    context: dg.AssetExecutionContext,
    result: WindowResult,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    conflicts = result.summary.succession_conflicts
    return dg.AssetCheckEvaluation(
        asset_key=context.asset_key,
        check_name=NO_SUCCESSION_CONFLICTS_CHECK,
        passed=not conflicts,
        severity=dg.AssetCheckSeverity.ERROR,
        description=conflict_check_description(result),
        metadata={
            "succession_conflicts": len(conflicts),
            "conflicts": dg.MetadataValue.json(conflict_rows(result.summary, 5)),
        },
        partition=result.partition_key,
        target_materialization_data=target,
    )


@dg.asset(
    metadata=release_metadata(),
    group_name=WORKS_GROUP,
    deps=[POOL_ASSET],
    pool=REGISTRY_POOL,
    partitions_def=WORKS_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
    kinds={"python", STORE_KIND},
    config_schema=IDENTIFIED_WORKS_CONFIG_SCHEMA,
    freshness_policy=WORKS_FRESHNESS,
    description=(
        "Every identifier in the works indexed in a window (`indexed_at`), minted in the "
        f"registry, and the works written back with their canonical IDs; works are read from and "
        f"written to {STORE_DESCRIPTIONS[STORE_KIND]}. One partition per window."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            NO_FAILED_WORKS_CHECK,
            asset="identified_works",
            partitions_def=WORKS_PARTITIONS,
            blocking=True,
            description=(
                "No work of the window failed at any stage (failures_by_stage). Blocking: "
                "a failure fails the run and holds back downstream assets."
            ),
        ),
        dg.AssetCheckSpec(
            EVERY_WORK_ACCOUNTED_FOR_CHECK,
            asset="identified_works",
            partitions_def=WORKS_PARTITIONS,
            description=EVERY_WORK_ACCOUNTED_FOR_DESCRIPTION,
        ),
        dg.AssetCheckSpec(
            NO_SUCCESSION_CONFLICTS_CHECK,
            asset="identified_works",
            partitions_def=WORKS_PARTITIONS,
            description=(
                "No work of the window met two live successors sharing one canonical ID (a data "
                "conflict for people: the document goes to the holder the tie rule picks). "
                "Fails until a re-run finds one successor per chain."
            ),
        ),
    ],
)
def identified_works(  # noqa: PLR0917 (Dagster injects resources by name)
    context: dg.AssetExecutionContext,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    churn_guard: ChurnGuardResource,
    alerts: AlertsResource,
    downstream: DownstreamTopicResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    """Every window of the run minted on its own, in order; re-running re-mints idempotently."""
    config = IdentifiedWorksConfig(**context.op_execution_context.op_config)
    partitions_def = WORKS_PARTITIONS
    windows: list[tuple[str, WindowScope]] = []
    for key in context.partition_keys:
        window = partitions_def.time_window_for_partition_key(key)
        windows.append((key, WindowScope(window.start, window.end, end_inclusive=False)))

    results: list[WindowResult] = []
    with retried_on_registry_outage():
        try:
            for result in mint_windows(
                context,
                windows,
                WorksResources(works_store, registry_database, churn_guard, alerts, downstream),
                batch_size=config.batch_size,
                job_id=context.run.run_id,
            ):
                results.append(result)
        except Exception:
            try:
                audits = _audit(
                    context, results, dict(windows), works_store, registry_database, alerts
                )
            except Exception as error:  # what stopped the run is the error to raise, not this one
                context.log.warning(f"the windows minted before the stop were not audited: {error}")
                audits = {}
            _record_windows(context, results, audits, as_events=True)
            _alert_failed_works(context, results, alerts)
            raise

    audits = _audit(context, results, dict(windows), works_store, registry_database, alerts)
    _record_windows(
        context,
        results,
        audits,
        as_events=False,
        run_metadata=newest_assignment_metadata(registry_database),
    )
    _alert_failed_works(context, results, alerts)
    # Every figure is partition-scoped: nothing here, or it would land on every partition.
    yield dg.MaterializeResult()
    if _any_check_selected(context):
        # After the materializations, so each evaluation can point at its partition's.
        targets = _target_materializations(context)
        for result in results:
            yield from _evaluations(context, result, targets.get(result.partition_key), audits)
    for name in _CHECKS:
        if _check_selected(context, name):
            yield dg.Output(
                None,
                output_name=context.assets_def.get_output_name_for_asset_check_key(
                    _check_key(context, name)
                ),
            )


def _audit(  # noqa: PLR0917 (the asset's resources, passed on)
    context: dg.AssetExecutionContext,
    results: list[WindowResult],
    scopes: Mapping[str, WindowScope],
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    alerts: AlertsResource,
) -> dict[str, AuditReport]:
    """Each minted window audited from the stores, when its check is selected; a difference is
    logged as a table and alerted once a run."""
    if not results or not _check_selected(context, EVERY_WORK_ACCOUNTED_FOR_CHECK):
        return {}
    audits = audit_windows(
        [(r.partition_key, scopes[r.partition_key], r.summary) for r in results],
        works_store=works_store,
        registry_database=registry_database,
    )
    log_differences(context.log, audits)
    if any(report.difference_count for report in audits.values()):
        alert = difference_alert(list(audits.items()), run_id=context.run.run_id)
        send_alert_quietly(alerts, alert, context.log)
    return audits


def _alert_failed_works(
    context: dg.AssetExecutionContext, results: list[WindowResult], alerts: AlertsResource
) -> None:
    if any(result.summary.failed for result in results):
        alert = failed_works_alert(
            [(r.partition_key, r.summary) for r in results], run_id=context.run.run_id
        )
        send_alert_quietly(alerts, alert, context.log)


SWEEPER_LOOKBACK_HOURS = env_int(None, "IDMINTER_SWEEPER_LOOKBACK_HOURS", 0, minimum=0)


class SweptWorksConfig(dg.Config):
    lookback_hours: int = Field(
        default=SWEEPER_LOOKBACK_HOURS,
        ge=0,
        description="Sweep works indexed this many hours back to now; 0 sweeps every work.",
    )
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=MIN_BATCH_SIZE)


def sweep_scope(lookback_hours: int, now: datetime) -> WorkScope:
    if not lookback_hours:
        return FullScope()
    return WindowScope(now - timedelta(hours=lookback_hours), now)


@dg.asset(
    metadata=release_metadata(),
    group_name=WORKS_GROUP,
    deps=[identified_works],
    kinds={"python", STORE_KIND},
    pool=REGISTRY_POOL,
    description=(
        "Works whose identified document is missing or older than their source document, "
        "whatever window they fell in (a source document written into a window already "
        "processed), found by auditing the source index against the identified store and "
        "minted by id. Its figures: works found (the first 100 named) and what minting did."
    ),
)
def swept_works(  # noqa: PLR0917 (Dagster injects resources by name)
    context: dg.AssetExecutionContext,
    config: SweptWorksConfig,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    churn_guard: ChurnGuardResource,
    alerts: AlertsResource,
    downstream: DownstreamTopicResource,
) -> Iterator[dg.MaterializeResult]:
    """Audit the scope, mint what is missing or stale; fails after recording if a work failed."""
    scope = sweep_scope(config.lookback_hours, datetime.now(UTC))
    context.log.info(f"sweeping {scope.describe()}")

    def mint(ids: IdsScope) -> RunSummary:
        return mint_scope(
            context,
            ids,
            WorksResources(works_store, registry_database, churn_guard, alerts, downstream),
            batch_size=config.batch_size,
            job_id=context.run.run_id,
        )

    with (
        works_store.open() as store,
        Minter(registry_database.connection_factory()) as minter,
    ):
        report = sweep(store, minter.lookup_ids, scope, mint, inheritances=minter.inheritances)
    context.log.info(report.describe())
    if report.works_found:
        log_differences(context.log, {"swept": report.found})
        send_alert_quietly(
            alerts, found_works_alert(report, run_id=context.run.run_id), context.log
        )
    yield dg.MaterializeResult(
        metadata={
            "scope": report.found.scope,
            "works_in_scope": report.found.in_scope,
            "works_found": report.works_found,
            "works_missing": report.found.counts["missing"],
            "works_stale": report.found.counts["stale"],
            "works_written": report.works_written,
            "works_superseded": report.works_superseded,
            "works_failed": report.works_failed,
            "found_works": dg.MetadataValue.json([w.as_dict() for w in report.found.difference]),
            "failures": dg.MetadataValue.json([f.as_dict() for f in report.failures]),
        }
    )
    if report.works_failed:
        raise FailedWorksError(
            description=(
                f"{report.works_failed} of the {report.works_found} works swept failed minting; "
                "the others were written. See the failures and the run's logs."
            ),
            allow_retries=False,
        )


CANDIDATE_IMPACT_ASSET = "candidate_impact"
IMPACT_WITHIN_THRESHOLDS_CHECK = "identity_impact_within_thresholds"


@dg.asset(
    metadata=release_metadata(),
    name=CANDIDATE_IMPACT_ASSET,
    group_name=WORKS_GROUP,
    kinds={"python", STORE_KIND},
    description=(
        "The identity impact of a reindex candidate (IDMINTER_IMPACT_CANDIDATE_PATH or "
        "IDMINTER_IMPACT_CANDIDATE_INDEX) over the whole index, against the identified works "
        "published today: per ontology type and source system, the public IDs it would mint "
        "anew, inherit and keep, and the published IDs no document would carry any more. "
        "Writes nothing. Make the promotion of a reindex depend on this asset: its blocking "
        "check holds the promotion back when the impact is over its thresholds."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            IMPACT_WITHIN_THRESHOLDS_CHECK,
            asset=CANDIDATE_IMPACT_ASSET,
            blocking=True,
            description=(
                "No ontology type and source system would lose more published IDs "
                "(IDMINTER_IMPACT_MAX_UNCARRIED) or mint more new ones "
                "(IDMINTER_IMPACT_MAX_NEW) than allowed. Blocking: downstream assets (the "
                "promotion) do not run."
            ),
        )
    ],
)
def candidate_impact(
    context: dg.AssetExecutionContext,
    works_store: WorksStoreResource,
    registry_database: RegistryDatabase,
    impact_candidate: ImpactCandidateResource,
    alerts: AlertsResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Assess the candidate over the full index; the figures, then the check."""
    with (
        batch_run_collector(),
        impact_candidate.open(works_store) as candidate,
        works_store.open() as published,
    ):
        report = assess_impact(
            candidate,
            published,
            registry_database.connection_factory(),
            FullScope(),
            thresholds=impact_candidate.thresholds(),
        )
    frame = report.frame()
    context.log.info(f"{report.describe()}\n\n" + frame.to_markdown(index=False))
    figures = report.as_dict()
    yield dg.MaterializeResult(
        metadata={
            "candidate": report.candidate,
            "published": report.published,
            "works_read": report.works_read,
            "works_failed": report.works_failed,
            **{f"ids_{fate}": report.total(fate) for fate in Fate},
            "by_type_and_system": dg.MetadataValue.md(frame.to_markdown(index=False)),
            "breaches": dg.MetadataValue.json(report.breaches),
        }
    )
    breaches = report.breaches
    if breaches:
        send_alert_quietly(alerts, impact_alert(report, run_id=context.run.run_id), context.log)
    yield dg.AssetCheckResult(
        check_name=IMPACT_WITHIN_THRESHOLDS_CHECK,
        passed=not breaches,
        severity=dg.AssetCheckSeverity.ERROR,
        description=report.describe(),
        metadata={
            "breaches": dg.MetadataValue.json(breaches),
            "ids": dg.MetadataValue.json(figures["by_type_and_system"]),
        },
    )
