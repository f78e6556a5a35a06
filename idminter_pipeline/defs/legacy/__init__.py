import dagster as dg

from idminter_pipeline.defs.legacy.assets import legacy_registry_migration, registry_adoption

defs = dg.Definitions(assets=[legacy_registry_migration, registry_adoption])
