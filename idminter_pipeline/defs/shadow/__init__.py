"""Shadow mode in Dagster: `shadow_comparison`, partitioned like `identified_works`, compares
each window with the legacy minter's output before cutover; its job and its schedule."""

import dagster as dg

from idminter_pipeline.defs.shadow.assets import shadow_comparison
from idminter_pipeline.defs.shadow.jobs import shadow_comparison_job
from idminter_pipeline.defs.shadow.resources import shadow_reference_from_env
from idminter_pipeline.defs.shadow.schedules import shadow_compare_lagged_window

defs = dg.Definitions(
    assets=[shadow_comparison],
    jobs=[shadow_comparison_job],
    schedules=[shadow_compare_lagged_window],
    resources={"shadow_reference": shadow_reference_from_env()},
)
