import dagster as dg

from idminter_pipeline.defs.alerts.resources import alerts_from_env

defs = dg.Definitions(resources={"alerts": alerts_from_env()})
