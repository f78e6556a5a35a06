"""Alerts in Dagster: the `alerts` resource and what a failed run says about its failure."""

import dagster as dg

from idminter_pipeline.defs.alerts.resources import alerts_from_env


@dg.definitions
def resources() -> dg.Definitions:
    """The domain's resources, read from the environment when the code location loads (its
    assets, checks, jobs, schedules and sensors are found in its modules)."""
    return dg.Definitions(
        resources={
            "alerts": alerts_from_env(),
        }
    )
