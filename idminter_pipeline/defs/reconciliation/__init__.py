import dagster as dg

from idminter_pipeline.defs.reconciliation.assets import registry_reconciliation

defs = dg.Definitions(assets=[registry_reconciliation])
