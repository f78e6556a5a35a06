import dagster as dg

from idminter_pipeline.defs.registry.assets import registry_schema
from idminter_pipeline.defs.registry.checks import registry_schema_is_this_projects

defs = dg.Definitions(assets=[registry_schema], asset_checks=[registry_schema_is_this_projects])
