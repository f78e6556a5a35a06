"""Shadow mode in Dagster: `shadow_comparison`, partitioned like `identified_works`, compares
each window with the legacy minter's output before cutover; its job and its schedule."""

import dagster as dg

from idminter_pipeline.defs.shadow.resources import shadow_reference_from_env


@dg.definitions
def resources() -> dg.Definitions:
    """The domain's resources, read from the environment when the code location loads (its
    assets, checks, jobs, schedules and sensors are found in its modules)."""
    return dg.Definitions(
        resources={
            "shadow_reference": shadow_reference_from_env(),
        }
    )
