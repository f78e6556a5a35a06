"""Helpers for the Dagster tests."""

from __future__ import annotations

from typing import Any

import dagster as dg


def failure_context(
    instance: dg.DagsterInstance,
    result: dg.ExecuteInProcessResult,
    resources: dict[str, Any] | None = None,
) -> dg.RunFailureSensorContext:
    """What a run-failure sensor is given for the failed run `result`."""
    return dg.build_run_status_sensor_context(
        sensor_name="test",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources=resources,
    ).for_run_failure()
