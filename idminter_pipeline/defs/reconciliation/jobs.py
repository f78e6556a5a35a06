"""The reconciliation job: what the `registry_reconciliation` schedule runs."""

import dagster as dg

from idminter_pipeline.defs.reconciliation.assets import registry_reconciliation

RECONCILIATION_JOB_NAME = "registry_reconciliation_job"
RECONCILIATION_TAG = "idminter/reconciliation"

registry_reconciliation_job = dg.define_asset_job(
    name=RECONCILIATION_JOB_NAME,
    selection=dg.AssetSelection.assets(registry_reconciliation),
    tags={RECONCILIATION_TAG: "true"},
    description=(
        "Reconciles the registry (a report; repairs only when run with repair: true) and runs "
        "one check per finding."
    ),
)
