import dagster as dg

from idminter_pipeline.defs.reconciliation.assets import registry_reconciliation
from idminter_pipeline.defs.reconciliation.jobs import registry_reconciliation_job
from idminter_pipeline.defs.reconciliation.schedules import registry_reconciliation_schedule
from idminter_pipeline.defs.reconciliation.sensors import registry_reconciliation_failure_alert

defs = dg.Definitions(
    assets=[registry_reconciliation],
    jobs=[registry_reconciliation_job],
    schedules=[registry_reconciliation_schedule],
    sensors=[registry_reconciliation_failure_alert],
)
