"""The one place that builds the code location's `Definitions`."""

from __future__ import annotations

import dagster as dg

from idminter_pipeline.defs import alerts, pool, registry, works
from idminter_pipeline.defs.resources import registry_database_from_env

defs = dg.Definitions.merge(
    registry.defs,
    alerts.defs,
    pool.defs,
    works.defs,
    dg.Definitions(resources={"registry_database": registry_database_from_env()}),
)
