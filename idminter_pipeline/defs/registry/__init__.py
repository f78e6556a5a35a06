import dagster as dg

from idminter_pipeline.defs.registry.assets import registry_schema

defs = dg.Definitions(assets=[registry_schema])
