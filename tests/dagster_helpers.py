"""Helpers for the Dagster tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

import dagster as dg

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.pool.sensors import pool_size_sensor
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)
from idminter_pipeline.registry.pool import PoolSettings


def failure_context(
    instance: dg.DagsterInstance,
    result: dg.ExecuteInProcessResult,
    resources: dict[str, Any] | None = None,
    *,
    run: dg.DagsterRun | None = None,
) -> dg.RunFailureSensorContext:
    """What a run-failure sensor is given for the failed run `result` (as `run` says it is,
    when given: a run tagged for a retry, a re-execution)."""
    return dg.build_run_status_sensor_context(
        sensor_name="test",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=run or instance.get_run_by_id(result.run_id),
        resources=resources,
    ).for_run_failure()


# A small pool for the pool sensor's outage and flapping tests.
POOL = PoolSettings(
    target_free=200,
    low_watermark=100,
    critical_watermark=20,
    batch_size=100,
    forecast_horizon_hours=0,
)


# The pool of the works assets' tests: room for their windows' works.
WORKS_POOL = PoolSettings(target_free=3_000, low_watermark=1_000, critical_watermark=500)


class Ticks:
    """The pool sensor evaluated tick after tick, carrying its cursor like the daemon does."""

    def __init__(self, resources: dict) -> None:
        self.resources = resources
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def tick(self, **resource_overrides: object) -> dg.SensorResult:
        """One evaluation, with `resource_overrides` in place of those resources this tick."""
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={**self.resources, **resource_overrides},
        )
        result = pool_size_sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return result


def pool_sensor_ticks(
    settings: DatabaseSettings, alerts_log: Path, topic_arn: str | None = None
) -> Ticks:
    """The pool sensor over `settings`' registry and `POOL`, alerting to `alerts_log` (and SNS
    `topic_arn`)."""
    return Ticks(
        {
            "registry_database": RegistryDatabase.from_settings(settings),
            "id_pool": FreeIdPool.from_settings(POOL),
            "alerts": AlertsResource(log_file=str(alerts_log), sns_topic_arn=topic_arn),
        }
    )


def works_resources(
    registry: DatabaseSettings, store_path: Path, alerts_log: Path, **more: object
) -> dict[str, object]:
    """The resources of the works assets and jobs: the SQLite works store at `store_path`,
    `registry`, the churn guard and downstream topic as configured by default, and alerts
    logged to `alerts_log`; `more` adds resources or replaces these."""
    return {
        "works_store": WorksStoreResource(sqlite_path=str(store_path)),
        "registry_database": RegistryDatabase.from_settings(registry),
        "churn_guard": ChurnGuardResource(),
        "downstream": DownstreamTopicResource(),
        "alerts": AlertsResource(log_file=str(alerts_log)),
        **more,
    }


def logged_alerts(alerts_log: Path) -> list[dict]:
    """The alerts the alerts resource wrote to `alerts_log`, in order."""
    if not alerts_log.exists():
        return []
    return [json.loads(line) for line in alerts_log.read_text().splitlines()]


def end_process_groups(processes: Iterable[subprocess.Popen]) -> None:
    """End the process group each of `processes` leads (a daemon or code server started with
    `start_new_session`, with what it started: a code server's child, the runs it launched):
    SIGTERM to every group, then SIGKILL to one whose leader has not exited within 30 s."""
    processes = list(processes)
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
