"""The one place that builds the code location's `Definitions`."""

from __future__ import annotations

import dagster as dg

from idminter_pipeline.defs import legacy, reconciliation, registry
from idminter_pipeline.defs.resources import registry_database_from_env

defs = dg.Definitions.merge(
    registry.defs,
    legacy.defs,
    reconciliation.defs,
    dg.Definitions(resources={"registry_database": registry_database_from_env()}),
)
