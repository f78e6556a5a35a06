"""The registry in Dagster: its schema as an asset, and the `registry_database` resource every
domain that reads or writes the registry uses."""

import dagster as dg

from idminter_pipeline.defs.resources import registry_database_from_env


@dg.definitions
def resources() -> dg.Definitions:
    """The domain's resources, read from the environment when the code location loads (its
    assets, checks, jobs, schedules and sensors are found in its modules)."""
    return dg.Definitions(
        resources={
            "registry_database": registry_database_from_env(),
        }
    )
