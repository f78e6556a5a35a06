"""The one place that builds the code location's `Definitions`."""

from __future__ import annotations

import dagster as dg

from idminter_pipeline.core.release import package_version, release_tag
from idminter_pipeline.defs import alerts, legacy, pool, reconciliation, registry, shadow, works
from idminter_pipeline.defs.resources import registry_database_from_env

defs = dg.Definitions.merge(
    registry.defs,
    alerts.defs,
    pool.defs,
    works.defs,
    legacy.defs,
    reconciliation.defs,
    shadow.defs,
    dg.Definitions(
        resources={"registry_database": registry_database_from_env()},
        # Which release this code location runs, shown with the location in the UI.
        metadata={"version": package_version(), "release": release_tag()},
    ),
)
