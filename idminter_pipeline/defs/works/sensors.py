"""Run-failure sensors of the works pipeline: alert people, and recover from an empty pool.

Both read only the failed run, its step failures and its check evaluations from the event log
(no registry queries).
"""

import dagster as dg

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.defs.alerts.failures import (
    PARTITION_TAGS,
    FailedRun,
    failed_check_evaluations,
    failed_run_alert,
    handled_without_skipping,
    run_failure_alert_sensor,
)
from idminter_pipeline.defs.retries import retried_run_skip
from idminter_pipeline.defs.works.assets import NO_FAILED_WORKS_CHECK
from idminter_pipeline.defs.works.jobs import (
    MINT_WORKS_BY_ID_JOB,
    MINT_WORKS_JOB,
    REPLENISH_AND_MINT_WORKS_BY_ID_JOB,
    REPLENISH_AND_MINT_WORKS_JOB,
    SWEEP_WORKS_JOB,
    replenish_and_mint_works_by_id_job,
    replenish_and_mint_works_job,
)
from idminter_pipeline.defs.works.runs import FailedWorksError

IDENTIFIED_WORKS = dg.AssetKey("identified_works")
SWEPT_WORKS = dg.AssetKey("swept_works")
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
POOL_EXHAUSTED = "PoolExhaustedError"
ALERT_SOURCE = "idminter-pipeline/works_run_failure_alert"


def mints_works(run: dg.DagsterRun) -> bool:
    """Whether a run minted works: one of our jobs, or any run that materializes the asset
    (backfills launched from the asset page run under Dagster's implicit asset job)."""
    return run.job_name in WORKS_JOBS or IDENTIFIED_WORKS in (run.asset_selection or ())


def sweeps_works(run: dg.DagsterRun) -> bool:
    """Whether a run is the sweeper's: it mints works by id, but is not retried as a window."""
    return run.job_name == SWEEP_WORKS_JOB or SWEPT_WORKS in (run.asset_selection or ())


def failed_only_on_works(context: dg.RunFailureSensorContext, failed: FailedRun) -> bool:
    """The run ran to its end and failed because works failed: that was alerted from the run,
    with the works, stages and reasons, so a second alert would only repeat it."""
    if failed.error_types and all(
        chain[-1] == FailedWorksError.__name__ for chain in failed.error_types
    ):
        return True
    if not failed.only_failed_checks:
        return False
    checks = failed_check_evaluations(context.instance, failed.run_id)
    return bool(checks) and all(
        c.asset_key == IDENTIFIED_WORKS and c.check_name == NO_FAILED_WORKS_CHECK for c in checks
    )


def mints_or_sweeps_works(run: dg.DagsterRun) -> bool:
    return mints_works(run) or sweeps_works(run)


@run_failure_alert_sensor(
    name="works_run_failure_alert",
    concerns=mints_or_sweeps_works,
    not_concerned="does not mint works",
)
def works_run_failure_alert(
    context: dg.RunFailureSensorContext, failed: FailedRun
) -> Alert | dg.SkipReason:
    """Alert people (alerts resource) when a minting run fails, with the innermost exception,
    the run and the partition. Failed works are alerted by the run itself; launchpad mistakes
    refused by config validation are not alerted."""
    run = context.dagster_run
    if failed_only_on_works(context, failed):
        return dg.SkipReason(f"run {run.run_id} failed on failed works, alerted by the run itself")
    exhausted = failed.raised(POOL_EXHAUSTED)
    retry = run.tags.get(RETRY_OF_TAG)
    if exhausted and not retry and not sweeps_works(run):
        todo = (
            "Nothing, usually: the pool-exhaustion recovery replenishes the pool and retries "
            "this run. Check that the retry succeeded."
        )
    else:
        todo = (
            "Open the run in Dagster, fix the cause, and re-execute it (re-minting the same "
            "window or ids is idempotent)."
        )
    return failed_run_alert(
        failed,
        title=f"Minting run failed: {failed.job_name}",
        runbook="Minting run failed: {job}",
        what_happened=(
            f"Run {run.run_id} of {failed.job_name}"
            + (f" (partition {failed.partition})" if failed.partition else "")
            + f" stopped: {failed.cause}. Windows it finished before stopping are recorded "
            "on their partitions; the rest were not minted."
        ),
        what_to_do=todo,
        severity=Severity.CRITICAL,
        source=ALERT_SOURCE,
        figures={"retry_of": retry, "pool_exhausted": exhausted},
    )


def recover_from_pool_exhaustion(
    context: dg.RunFailureSensorContext,
) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    if not mints_works(run):
        return dg.SkipReason(f"run {run.run_id} does not mint works")
    if not FailedRun.from_context(context).raised(POOL_EXHAUSTED):
        return dg.SkipReason(f"run {run.run_id} did not fail on an exhausted pool")
    if RETRY_OF_TAG in run.tags:
        # A recovery that itself found the pool empty needs a person; the alert sensor calls one.
        return dg.SkipReason(f"run {run.run_id} was already a recovery of {run.tags[RETRY_OF_TAG]}")
    if (retried := retried_run_skip(run)) is not None:
        return retried  # the re-execution's own failure, if it fails, is recovered
    tags = {RETRY_OF_TAG: run.run_id, **{t: run.tags[t] for t in PARTITION_TAGS if t in run.tags}}
    by_id = run.job_name in BY_ID_JOBS
    return dg.RunRequest(
        # One recovery per run and its re-executions (they share the root run): a re-executed
        # run that found the pool empty again never starts a second one.
        run_key=f"pool-recovery:{run.root_run_id or run.run_id}",
        job_name=REPLENISH_AND_MINT_WORKS_BY_ID_JOB if by_id else REPLENISH_AND_MINT_WORKS_JOB,
        run_config=run.run_config,
        tags=tags,
    )


@dg.run_failure_sensor(
    name="pool_exhaustion_recovery",
    default_status=dg.DefaultSensorStatus.RUNNING,
    request_jobs=[replenish_and_mint_works_job, replenish_and_mint_works_by_id_job],
    description=(
        "When a minting run fails because the free-ID pool is exhausted, replenish the pool and "
        "retry the same window or ids, once per failed run, without a person."
    ),
)
def pool_exhaustion_recovery(context: dg.RunFailureSensorContext) -> dg.RunRequest | None:
    return handled_without_skipping(context, recover_from_pool_exhaustion(context))
