"""The code location tests/test_run_retries.py serves to a real `dagster-daemon`: the project's
pool replenishment job against a registry that is away, a job that fails on its works, a job
whose run fails before any step (its first launch only), the project's own failure sensor, and
a sensor that launches each job once.

Settings come from the environment the test gives the daemon: RETRY_TEST_DIR (alerts log and
markers), RETRY_TEST_REGISTRY_PORT (a port nothing listens on)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.executor import RUN_EXECUTOR
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.jobs import POOL_REPLENISHMENT_TAG, pool_replenishment_job
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.pool.sensors import pool_replenishment_failure_alert
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.runs import FailedWorksError
from idminter_pipeline.registry.pool import PoolSettings

WORKDIR = Path(os.environ["RETRY_TEST_DIR"])
FLAKY_MARKER = WORKDIR / "flaky-start-failed-once"
# Tagged as replenishments so the project's replenishment failure sensor judges them too.
TAGS = {POOL_REPLENISHMENT_TAG: "rehearsal"}


@dg.op
def judge_works() -> None:
    raise FailedWorksError(
        description="3 of 10 works failed minting; the others were written.", allow_retries=False
    )


@dg.job(tags=TAGS)
def failing_works_job() -> None:
    judge_works()


@dg.resource
def starts_once_badly(_context: dg.InitResourceContext) -> None:
    """Fails the run before any step on its first launch (as a lost ECS task would), not after."""
    if not FLAKY_MARKER.exists():
        FLAKY_MARKER.touch()
        raise RuntimeError("the run worker could not start (first launch only)")


@dg.op(required_resource_keys={"start"})
def do_nothing() -> None:
    return None


@dg.job(tags=TAGS, resource_defs={"start": starts_once_badly})
def flaky_start_job() -> None:
    do_nothing()


JOBS = ("pool_replenishment_job", "failing_works_job", "flaky_start_job")


@dg.sensor(
    jobs=[pool_replenishment_job, failing_works_job, flaky_start_job],
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def launch_each_once(_context: dg.SensorEvaluationContext) -> list[dg.RunRequest]:
    return [dg.RunRequest(run_key=name, job_name=name) for name in JOBS]


defs = dg.Definitions(
    assets=[canonical_id_pool],
    jobs=[pool_replenishment_job, failing_works_job, flaky_start_job],
    sensors=[launch_each_once, pool_replenishment_failure_alert],
    executor=RUN_EXECUTOR,  # as the code location runs its steps
    resources={
        "registry_database": RegistryDatabase.from_settings(
            DatabaseSettings(port=int(os.environ["RETRY_TEST_REGISTRY_PORT"]), connect_timeout=2)
        ),
        "id_pool": FreeIdPool.from_settings(
            PoolSettings(target_free=100, low_watermark=50, critical_watermark=10)
        ),
        "alerts": AlertsResource(log_file=str(WORKDIR / "alerts.log")),
    },
)
