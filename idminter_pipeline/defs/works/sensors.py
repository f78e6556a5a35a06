"""Run-failure sensors of the works pipeline: alert people, and recover from an empty pool.

Both read only the failed run and its step failures from the event log (no registry queries).
"""

from collections.abc import Iterator

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from idminter_pipeline.alerts import Alert, Severity
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.works.jobs import (
    MINT_WORKS_BY_ID_JOB,
    MINT_WORKS_JOB,
    REPLENISH_AND_MINT_WORKS_BY_ID_JOB,
    REPLENISH_AND_MINT_WORKS_JOB,
    replenish_and_mint_works_by_id_job,
    replenish_and_mint_works_job,
)

IDENTIFIED_WORKS = dg.AssetKey("identified_works")
WORKS_JOBS = frozenset(
    {
        MINT_WORKS_JOB,
        MINT_WORKS_BY_ID_JOB,
        REPLENISH_AND_MINT_WORKS_JOB,
        REPLENISH_AND_MINT_WORKS_BY_ID_JOB,
    }
)
BY_ID_JOBS = frozenset({MINT_WORKS_BY_ID_JOB, REPLENISH_AND_MINT_WORKS_BY_ID_JOB})
RETRY_OF_TAG = "idminter/retry-of"
_PARTITION_TAGS = (
    "dagster/partition",
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)


def mints_works(run: dg.DagsterRun) -> bool:
    """Whether a run minted works: one of our jobs, or any run that materializes the asset
    (backfills launched from the asset page run under Dagster's implicit asset job)."""
    return run.job_name in WORKS_JOBS or IDENTIFIED_WORKS in (run.asset_selection or ())


def _chain(error: SerializableErrorInfo | None) -> Iterator[SerializableErrorInfo]:
    while error is not None:
        yield error
        yield from _chain(error.context) if error.context is not None else iter(())
        error = error.cause


def step_errors(context: dg.RunFailureSensorContext) -> list[SerializableErrorInfo]:
    errors = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data is not None and data.error is not None:
            errors.append(data.error)
    return errors


def pool_exhausted(context: dg.RunFailureSensorContext) -> bool:
    return any(
        link.cls_name == "PoolExhaustedError"
        for error in step_errors(context)
        for link in _chain(error)
    )


@dg.run_failure_sensor(
    name="works_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert people (alerts resource) when a minting run fails.",
)
def works_run_failure_alert(
    context: dg.RunFailureSensorContext, alerts: AlertsResource
) -> dg.SkipReason | None:
    run = context.dagster_run
    if not mints_works(run):
        return dg.SkipReason(f"run {run.run_id} does not mint works")
    messages = [e.message.strip().splitlines()[0] for e in step_errors(context) if e.message]
    exhausted = pool_exhausted(context)
    retry = run.tags.get(RETRY_OF_TAG)
    if exhausted and not retry:
        todo = (
            "Nothing, usually: the pool-exhaustion recovery replenishes the pool and retries "
            "this run. Check that the retry succeeded."
        )
    else:
        todo = (
            "Open the run in Dagster, fix the cause, and re-execute it (re-minting the same "
            "window or ids is idempotent)."
        )
    alerts.send(
        Alert(
            title=f"Minting run failed: {run.job_name}",
            what_happened=(
                f"Run {run.run_id} failed: "
                + ("; ".join(messages) if messages else context.failure_event.message or "")
            ),
            what_to_do=todo,
            figures={
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": run.tags.get("dagster/partition"),
                "retry_of": retry,
                "pool_exhausted": exhausted,
            },
            severity=Severity.CRITICAL,
        ),
        log=context.log,
    )
    return None


@dg.run_failure_sensor(
    name="pool_exhaustion_recovery",
    default_status=dg.DefaultSensorStatus.RUNNING,
    request_jobs=[replenish_and_mint_works_job, replenish_and_mint_works_by_id_job],
    description=(
        "When a minting run fails because the free-ID pool is exhausted, replenish the pool and "
        "retry the same window or ids, once per failed run, without a person."
    ),
)
def pool_exhaustion_recovery(context: dg.RunFailureSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    if not mints_works(run):
        return dg.SkipReason(f"run {run.run_id} does not mint works")
    if not pool_exhausted(context):
        return dg.SkipReason(f"run {run.run_id} did not fail on an exhausted pool")
    if RETRY_OF_TAG in run.tags:
        # A recovery that itself found the pool empty needs a person; the alert sensor calls one.
        return dg.SkipReason(f"run {run.run_id} was already a recovery of {run.tags[RETRY_OF_TAG]}")
    tags = {RETRY_OF_TAG: run.run_id, **{t: run.tags[t] for t in _PARTITION_TAGS if t in run.tags}}
    by_id = run.job_name in BY_ID_JOBS
    return dg.RunRequest(
        run_key=f"pool-recovery:{run.run_id}",
        job_name=REPLENISH_AND_MINT_WORKS_BY_ID_JOB if by_id else REPLENISH_AND_MINT_WORKS_JOB,
        run_config=run.run_config,
        tags=tags,
    )
