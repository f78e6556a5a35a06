"""`registry_reconciliation_failure_alert`: a reconciliation that cannot run leaves the registry
unchecked, so its failure alerts, with the innermost exception and the run."""

import dagster as dg

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.defs.alerts.failures import (
    FailedRun,
    domain_run,
    failed_check_evaluations,
    failed_run_alert,
    run_failure_alert_sensor,
)
from idminter_pipeline.defs.reconciliation.assets import MINTING_ASSET, registry_reconciliation
from idminter_pipeline.defs.reconciliation.jobs import RECONCILIATION_TAG

ALERT_SOURCE = "idminter-pipeline/registry_reconciliation_failure_alert"
# Runs that also mint works or top up the pool are alerted by those domains' sensors.
OTHER_DOMAINS = frozenset({dg.AssetKey(MINTING_ASSET), dg.AssetKey("canonical_id_pool")})


def reconciles_registry(run: dg.DagsterRun) -> bool:
    """The reconciliation job (tagged), or a run that materializes the asset from its page."""
    return domain_run(
        run, tag=RECONCILIATION_TAG, asset=registry_reconciliation.key, others=OTHER_DOMAINS
    )


@run_failure_alert_sensor(
    name="registry_reconciliation_failure_alert",
    concerns=reconciles_registry,
    not_concerned="does not reconcile the registry",
)
def registry_reconciliation_failure_alert(
    context: dg.RunFailureSensorContext, failed: FailedRun
) -> Alert | dg.SkipReason:
    """Alert people when a reconciliation run fails. Critical findings are alerted by the run
    itself; launchpad mistakes refused by config validation are not alerted."""
    run = context.dagster_run
    if failed.only_failed_checks and all(
        check.asset_key == registry_reconciliation.key
        for check in failed_check_evaluations(context.instance, run.run_id)
    ):
        return dg.SkipReason(
            f"run {run.run_id} failed on a blocking finding, alerted by the run itself"
        )
    return failed_run_alert(
        failed,
        title="Registry reconciliation failed",
        what_happened=(
            f"Run {run.run_id} of {failed.job_name} did not finish, so the registry went "
            f"unchecked: {failed.cause}"
        ),
        what_to_do=(
            "Fix the cause and re-execute the run, or run `idminter reconcile` by hand; "
            "findings such as free IDs in use only show up when it runs."
        ),
        severity=Severity.CRITICAL,
        source=ALERT_SOURCE,
    )
