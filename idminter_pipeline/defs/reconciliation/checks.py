"""One asset check per reconciliation finding; free IDs in use block everything downstream."""

import dagster as dg

from idminter_pipeline.registry import reconciliation

RECONCILIATION_ASSET = "registry_reconciliation"
BLOCKING_FINDINGS = frozenset({reconciliation.FREE_IDS_IN_USE})


def _check_name(finding: str) -> str:
    return f"no_{finding}"


RECONCILIATION_CHECK_SPECS = [
    dg.AssetCheckSpec(
        _check_name(finding),
        asset=RECONCILIATION_ASSET,
        blocking=finding in BLOCKING_FINDINGS,
        description=f"reconciliation finds no {finding.replace('_', ' ')}",
    )
    for finding in reconciliation.FINDINGS
]


def check_results(report: reconciliation.ReconciliationReport) -> list[dg.AssetCheckResult]:
    results = []
    for finding in report.findings:
        remaining = finding.count - finding.repaired
        severe = finding.severity in {"critical", "error"}
        results.append(
            dg.AssetCheckResult(
                check_name=_check_name(finding.finding),
                passed=remaining == 0,
                severity=dg.AssetCheckSeverity.ERROR if severe else dg.AssetCheckSeverity.WARN,
                metadata={
                    "status": finding.status,
                    "count": dg.MetadataValue.int(finding.count),
                    "repaired": dg.MetadataValue.int(finding.repaired),
                    "examples": dg.MetadataValue.json(finding.examples),
                    "note": finding.note,
                },
            )
        )
    return results
