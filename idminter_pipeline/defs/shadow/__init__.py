"""Shadow mode in Dagster: `shadow_comparison`, partitioned like `identified_works`, compares
each window with the legacy minter's output before cutover."""

import dagster as dg

from idminter_pipeline.defs.shadow.assets import shadow_comparison
from idminter_pipeline.defs.shadow.resources import shadow_reference_from_env

defs = dg.Definitions(
    assets=[shadow_comparison],
    resources={"shadow_reference": shadow_reference_from_env()},
)
