"""The pool's sensors.

`pool_size_sensor`: one bounded, indexed statement per tick. Every tick records what it read on
`canonical_id_pool` (an observation, plotted by the UI beside the top-ups, and an evaluation of
both watermark checks); below the low watermark it requests a replenishment run, and it alerts on
low water and on a forecast to run dry.

The same tick watches the registry itself (`registry.reachability`): a tick that cannot read it
is skipped with the cause. An outage longer than `IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS`
sends one critical alert, then one resolution when a tick reads it again; shorter outages that
together fill a share of a sliding window (a flapping registry) send one critical alert per
episode, then one resolution once a whole window passes without an outage.

`pool_replenishment_failure_alert`: a replenishment run that fails is a page: minting stops when
the pool is empty.
"""

import time

import dagster as dg

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.errors import (
    AlertDeliveryError,
    RegistryUnavailableError,
    SchemaMigrationError,
)
from idminter_pipeline.core.settings import env_int
from idminter_pipeline.defs.alerts.failures import (
    FailedRun,
    domain_run,
    failed_run_alert,
    run_failure_alert_sensor,
)
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.checks import watermark_outcome
from idminter_pipeline.defs.pool.jobs import (
    POOL_REPLENISHMENT_JOB_NAME,
    POOL_REPLENISHMENT_TAG,
    pool_replenishment_job,
    replenishment_run_request,
)
from idminter_pipeline.defs.pool.metrics import emit_pool_metrics
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry.outage import is_outage
from idminter_pipeline.registry.pool import PoolSettings, PoolWatch, watch_pool
from idminter_pipeline.registry.pool.watch import WatchState, assess, watch_caps
from idminter_pipeline.registry.reachability import PagingRules, Reachability, Tick

SENSOR_INTERVAL_ENV = "IDMINTER_POOL_SENSOR_INTERVAL_SECONDS"
DEFAULT_SENSOR_INTERVAL_SECONDS = 60
SENSOR_NAME = "pool_size_sensor"
FAILURE_ALERT_SOURCE = "idminter-pipeline/pool_replenishment_failure_alert"
# Runs that mint works and top the pool up on the way (the pool-exhaustion recovery) are the
# works domain's: its failure alert covers them.
MINTING_ASSET = dg.AssetKey("identified_works")


def observation_metadata(watch: PoolWatch) -> dict[str, dg.MetadataValue]:
    """What one tick read. Numbers only where they are exact, so the UI plots true values only.

    Above the sensor's cap a count is a lower bound: it is recorded as text ("more than N"),
    which the UI lists but does not plot, rather than as a number that looks like a level.
    """
    metadata: dict[str, dg.MetadataValue] = {
        "free": (
            dg.MetadataValue.int(watch.free)
            if watch.free_is_exact
            else dg.MetadataValue.text(f"more than {watch.free_cap:,} (the sensor's cap)")
        ),
        "minted_last_hour": (
            dg.MetadataValue.int(watch.minted_last_hour)
            if watch.minted_is_exact
            else dg.MetadataValue.text(f"more than {watch.minted_cap:,} (the sensor's cap)")
        ),
    }
    hours = watch.hours_until_empty()
    if watch.minted_last_hour == 0:
        metadata["hours_until_empty"] = dg.MetadataValue.text(
            "no forecast: nothing minted in the last hour"
        )
    elif hours is None:  # the free count stopped at its cap: the pool lasts at least this long
        lasts = watch.free_cap / watch.minted_last_hour
        metadata["hours_until_empty"] = dg.MetadataValue.text(f"more than {lasts:,.2f}")
    elif watch.minted_is_exact:
        metadata["hours_until_empty"] = dg.MetadataValue.float(round(hours, 2))
    else:  # more were minted than counted: the pool empties sooner than this
        metadata["hours_until_empty"] = dg.MetadataValue.text(f"less than {hours:,.2f}")
    metadata["counted_up_to"] = dg.MetadataValue.text(
        f"{watch.free_cap:,} free IDs, {watch.minted_cap:,} minted in the last hour"
    )
    return metadata


def tick_events(
    watch: PoolWatch, settings: PoolSettings, summary: str
) -> list[dg.AssetObservation | dg.AssetCheckEvaluation]:
    """The observation and both watermark check evaluations one tick records."""
    events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = [
        dg.AssetObservation(
            asset_key=canonical_id_pool.key,
            description=f"{SENSOR_NAME}: {summary}",
            metadata=observation_metadata(watch),
        )
    ]
    for level, watermark in (
        ("low", settings.low_watermark),
        ("critical", settings.critical_watermark),
    ):
        # The free count's cap is at least the low watermark, so either the count is exact or
        # the pool is above both watermarks.
        outcome = watermark_outcome(
            free=watch.free, free_is_exact=watch.free_is_exact, watermark=watermark, level=level
        )
        events.append(outcome.evaluation(source=SENSOR_NAME))
    return events


@dg.sensor(
    name=SENSOR_NAME,
    job=pool_replenishment_job,
    minimum_interval_seconds=env_int(
        None, SENSOR_INTERVAL_ENV, DEFAULT_SENSOR_INTERVAL_SECONDS, minimum=1
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Counts free IDs (bounded, idx_free) and IDs minted in the last hour (idx_assigned_at) "
        "in one statement, and records them on canonical_id_pool (an observation and both "
        "watermark checks) every tick. Below the low watermark: one replenishment run and one "
        "warning per low-water episode; below critical, or forecast to empty within the "
        "horizon: critical."
    ),
)
def pool_size_sensor(
    context: dg.SensorEvaluationContext,
    registry_database: RegistryDatabase,
    id_pool: FreeIdPool,
    alerts: AlertsResource,
) -> dg.SensorResult:
    settings = id_pool.settings()
    state = WatchState.from_cursor(context.cursor)
    reachability = Reachability.from_cursor(context.cursor)
    rules = PagingRules.from_env()  # a bad value fails the tick, naming it
    database = registry_database.settings().describe()
    free_cap, minted_cap = watch_caps(state, settings)
    try:
        conn = registry_database.connect()
        try:
            watch = watch_pool(conn, free_cap=free_cap, minted_cap=minted_cap)
        finally:
            conn.close()
    except SchemaMigrationError as error:
        return dg.SensorResult(skip_reason=str(error), cursor=context.cursor)
    except Exception as error:
        if not (isinstance(error, RegistryUnavailableError) or is_outage(error)):
            raise
        cause = f"{type(error).__name__}: {error}"
        tick = reachability.after_failure(time.time(), cause, rules=rules, database=database)
        reachability = _kept(alerts, tick, context)
        return dg.SensorResult(
            skip_reason=f"registry unreachable: {cause}",
            cursor=reachability.into_cursor(context.cursor),
        )
    tick = reachability.after_success(time.time(), rules=rules, database=database)
    reachability = _kept(alerts, tick, context)  # an undelivered resolution goes again next tick
    # The free count as a CloudWatch metric (EMF on stdout) when configured: alarms see it even
    # if everything below this line fails.
    emit_pool_metrics(watch, settings)

    decision = assess(
        watch,
        state,
        settings,
        database=database,
        replenishment_job=POOL_REPLENISHMENT_JOB_NAME,
    )
    new_state = decision.state
    for kind, alert in decision.alerts:
        try:
            alerts.send(alert, log=context.log)
        except AlertDeliveryError as error:
            # Not recorded as sent, so the next tick tries every channel again (a repeated log
            # line is better than a page that never went out); the run request still goes.
            context.log.error(str(error))
            continue
        new_state = new_state.after_alert(kind)

    run_requests = (
        [replenishment_run_request(new_state.run_key(), "pool-low-water")]
        if decision.request_replenishment
        else []
    )
    return dg.SensorResult(
        run_requests=run_requests,
        skip_reason=None if run_requests else decision.summary,
        cursor=reachability.into_cursor(new_state.to_cursor()),
        asset_events=tick_events(watch, settings, decision.summary),
    )


def _kept(alerts: AlertsResource, tick: Tick, context: dg.SensorEvaluationContext) -> Reachability:
    """The registry's state after `tick`, its alert sent (kept as unsent if it was not)."""
    return tick.kept(tick.alert is None or _delivered(alerts, tick.alert, context))


def _delivered(alerts: AlertsResource, alert: Alert, context: dg.SensorEvaluationContext) -> bool:
    """Whether every channel took `alert`; if not, the next tick sends it again."""
    try:
        alerts.send(alert, log=context.log)
    except AlertDeliveryError as error:
        context.log.error(str(error))
        return False
    return True


def replenishes_pool(run: dg.DagsterRun) -> bool:
    """A run that tops the pool up and mints nothing (minting runs have their own alert)."""
    return domain_run(
        run, tag=POOL_REPLENISHMENT_TAG, asset=canonical_id_pool.key, others={MINTING_ASSET}
    )


@run_failure_alert_sensor(
    name="pool_replenishment_failure_alert",
    concerns=replenishes_pool,
    not_concerned="does not replenish the pool",
)
def pool_replenishment_failure_alert(
    context: dg.RunFailureSensorContext, failed: FailedRun, id_pool: FreeIdPool
) -> Alert:
    """Alert people (alerts resource) when a run that tops up the free-ID pool fails, with the
    innermost exception, the run and what to do."""
    run = context.dagster_run
    target = id_pool.settings().target_free
    reason = run.tags.get("idminter/reason")
    return failed_run_alert(
        failed,
        title="Free-ID pool replenishment failed",
        what_happened=(
            f"Run {run.run_id} of {failed.job_name}"
            + (f" (requested by {reason})" if reason else "")
            + f" did not top the free-ID pool up: {failed.cause}"
        ),
        what_to_do=(
            "Minting stops when the pool is empty. Fix the cause, then re-execute the run "
            f"in Dagster or run `idminter pool top-up --target {target}`; `idminter pool "
            "status` shows how long the pool lasts at the current rate."
        ),
        severity=Severity.CRITICAL,
        source=FAILURE_ALERT_SOURCE,
        figures={"target_free": target, "requested_by": reason},
    )
