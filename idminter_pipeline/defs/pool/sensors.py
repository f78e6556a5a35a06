"""`pool_size_sensor`: one bounded, indexed statement per tick; runs and alerts on low water."""

import os

import dagster as dg

from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.jobs import (
    POOL_REPLENISHMENT_JOB_NAME,
    pool_replenishment_job,
    replenishment_run_request,
)
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.errors import AlertDeliveryError, SchemaMigrationError
from idminter_pipeline.registry.pool import watch_pool
from idminter_pipeline.registry.pool_watch import WatchState, assess, watch_caps

SENSOR_INTERVAL_ENV = "IDMINTER_POOL_SENSOR_INTERVAL_SECONDS"
DEFAULT_SENSOR_INTERVAL_SECONDS = 60


@dg.sensor(
    name="pool_size_sensor",
    job=pool_replenishment_job,
    minimum_interval_seconds=int(
        os.environ.get(SENSOR_INTERVAL_ENV) or DEFAULT_SENSOR_INTERVAL_SECONDS
    ),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Counts free IDs (bounded, idx_free) and IDs minted in the last hour (idx_assigned_at) "
        "in one statement. Below the low watermark: one replenishment run and one warning per "
        "low-water episode; below critical, or forecast to empty within the horizon: critical."
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
    free_cap, minted_cap = watch_caps(state, settings)
    conn = registry_database.connect()
    try:
        watch = watch_pool(conn, free_cap=free_cap, minted_cap=minted_cap)
    except SchemaMigrationError as error:
        return dg.SensorResult(skip_reason=str(error), cursor=context.cursor)
    finally:
        conn.close()

    decision = assess(
        watch,
        state,
        settings,
        database=registry_database.settings().describe(),
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
        cursor=new_state.to_cursor(),
    )
