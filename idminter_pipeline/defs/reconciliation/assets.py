"""`registry_reconciliation`: the registry's consistency report, after minting."""

import dagster as dg
from pydantic import Field, field_validator

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.errors import AlertDeliveryError
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.config import positive_int_field
from idminter_pipeline.defs.reconciliation.checks import (
    RECONCILIATION_ASSET,
    RECONCILIATION_CHECK_SPECS,
    check_results,
    describe_finding,
    finding_label,
)
from idminter_pipeline.defs.registry.assets import REGISTRY_GROUP
from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import REGISTRY_POOL, RegistryDatabase
from idminter_pipeline.defs.retries import retried_on_registry_outage
from idminter_pipeline.registry import reconciliation

# Defined by the works domain; an external key until that code location part is merged.
MINTING_ASSET = "identified_works"
ALERT_SOURCE = "idminter-pipeline/registry_reconciliation"
CRITICAL = "critical"


class ReconciliationConfig(dg.Config):
    """The asset's run config, typed (`RECONCILIATION_CONFIG_SCHEMA` is what Dagster checks)."""

    repair: bool = False
    """Mark free IDs in use as assigned; return orphans unused for the grace period."""
    grace_period: str = "7d"
    """How long an assigned ID must stay unused before repair returns it (30m, 12h, 7d)."""
    batch_size: int = Field(default=reconciliation.DEFAULT_BATCH_SIZE, ge=1)
    """Keys per scan batch: at least 1, clamped to the module's bounds."""

    @field_validator("grace_period")
    @classmethod
    def _is_a_duration(cls, value: str) -> str:
        # Refused with the config when the step starts, naming the value, before any scan.
        reconciliation.parse_duration(value)
        return value


# The launchpad's schema: a batch size below 1 is refused when the run is launched, not in it.
RECONCILIATION_CONFIG_SCHEMA = {
    "repair": dg.Field(
        bool,
        default_value=False,
        description="Mark free IDs in use as assigned; return orphans unused for the grace period.",
    ),
    "grace_period": dg.Field(
        str,
        default_value="7d",
        description="How long an assigned ID must stay unused before repair returns it "
        "(30m, 12h, 7d).",
    ),
    "batch_size": positive_int_field(
        reconciliation.DEFAULT_BATCH_SIZE,
        f"Keys per scan batch, at least 1 (clamped to {reconciliation.MIN_BATCH_SIZE:,}-"
        f"{reconciliation.MAX_BATCH_SIZE:,}).",
    ),
}


def _table(frame: object, columns: list[str]) -> dg.TableMetadataValue:
    records = [
        dg.TableRecord({c: str(row[c]) for c in columns})
        for row in frame.to_dict("records")  # type: ignore[attr-defined]
    ]
    return dg.MetadataValue.table(
        records=records,
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns]),
    )


def critical_finding_alerts(
    report: reconciliation.ReconciliationReport, *, run_id: str, database: str
) -> list[Alert]:
    """One alert per critical finding: critical while any is left, a warning once all are
    repaired (the registry was about to hand an ID out twice; someone should know why)."""
    alerts = []
    for finding in report.findings:
        if finding.severity != CRITICAL or finding.count == 0:
            continue
        remaining = finding.count - finding.repaired
        name = finding_label(finding.finding)
        alerts.append(
            Alert(
                title=(
                    f"Registry reconciliation found {name}"
                    if remaining
                    else f"Registry reconciliation repaired {name}"
                ),
                runbook=(
                    "Registry reconciliation found {finding}"
                    if remaining
                    else "Registry reconciliation repaired {finding}"
                ),
                what_happened=(
                    f"The reconciliation of {database} found {describe_finding(finding)}."
                    + (
                        f" The blocking check no_{finding.finding} failed, so assets downstream "
                        "of registry_reconciliation do not run."
                        if remaining
                        else ""
                    )
                ),
                what_to_do=(
                    "Run `idminter reconcile --repair` (or materialize registry_reconciliation "
                    "with repair: true) now, then find out what wrote the mappings outside the "
                    "minter: until then an ID in use can be handed out again."
                    if remaining
                    else "Find out what wrote mappings outside the minter (the repaired IDs are "
                    "in the run's changes table)."
                ),
                figures={
                    "finding": finding.finding,
                    "count": finding.count,
                    "repaired": finding.repaired,
                    "remaining": remaining,
                    "examples": ", ".join(finding.examples[:5]),
                },
                severity=Severity.CRITICAL if remaining else Severity.WARNING,
                source=ALERT_SOURCE,
                cause=describe_finding(finding),
                run_id=run_id,
            )
        )
    return alerts


@dg.asset(
    metadata=release_metadata(),
    name=RECONCILIATION_ASSET,
    group_name=REGISTRY_GROUP,
    pool=REGISTRY_POOL,
    deps=[MINTING_ASSET],
    kinds={"mysql", "pandas"},
    check_specs=RECONCILIATION_CHECK_SPECS,
    config_schema=RECONCILIATION_CONFIG_SCHEMA,
)
def registry_reconciliation(
    context: dg.AssetExecutionContext,
    registry_database: RegistryDatabase,
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    """Orphans, free IDs in use, mappings without IDs, predecessor mismatches, case variants."""
    config = ReconciliationConfig(**context.op_execution_context.op_config)
    with retried_on_registry_outage():
        report = reconciliation.reconcile(
            registry_database.connection_factory(),
            repair=config.repair,
            grace_period=reconciliation.parse_duration(config.grace_period),
            batch_size=config.batch_size,
        )
    for change in report.changes:
        context.log.info(f"repair: {change.action} {change.canonical_id} ({change.detail})")
    for alert in critical_finding_alerts(
        report, run_id=context.run.run_id, database=registry_database.settings().describe()
    ):
        try:
            alerts.send(alert, log=context.log)
        except AlertDeliveryError as error:
            # The findings are recorded in the checks either way; say the page did not go out.
            context.log.error(str(error))
    frame = report.to_frame()
    metadata: dict[str, object] = {
        "report": _table(frame, list(frame.columns)),
        "repair": dg.MetadataValue.bool(report.repair),
        "changes_total": dg.MetadataValue.int(report.changes_total),
        "duration_seconds": dg.MetadataValue.float(report.duration_seconds),
        "scan_seconds": dg.MetadataValue.json(report.scan_seconds),
    }
    if report.changes:
        changes = report.changes_frame()
        metadata["changes"] = _table(changes, list(changes.columns))
    return dg.MaterializeResult(metadata=metadata, check_results=check_results(report))
