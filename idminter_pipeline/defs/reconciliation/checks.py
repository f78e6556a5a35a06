"""One asset check per reconciliation finding; free IDs in use and IDs shared without inheritance
block everything downstream."""

import dagster as dg

from idminter_pipeline.registry import reconciliation

RECONCILIATION_ASSET = "registry_reconciliation"
BLOCKING_FINDINGS = frozenset(
    {reconciliation.FREE_IDS_IN_USE, reconciliation.SHARED_WITHOUT_INHERITANCE}
)


def check_name(finding: str) -> str:
    return f"no_{finding}"


def finding_label(name: str) -> str:
    """`free_ids_in_use` as people write it: `free IDs in use`."""
    words = ["IDs" if w == "ids" else "ID" if w == "id" else w for w in name.split("_")]
    return " ".join(words)


RECONCILIATION_CHECK_SPECS = [
    dg.AssetCheckSpec(
        check_name(finding),
        asset=RECONCILIATION_ASSET,
        blocking=finding in BLOCKING_FINDINGS,
        description=f"reconciliation finds no {finding_label(finding)}",
    )
    for finding in reconciliation.FINDINGS
]


def describe_finding(finding: reconciliation.FindingResult) -> str:
    """One sentence for the check, the alert and the log: how many, how bad, examples."""
    what = finding_label(finding.finding)
    if finding.status == "unavailable":
        return f"{what}: not checked ({finding.note or 'unavailable on this registry'})"
    if finding.count == 0:
        return f"no {what}"
    remaining = finding.count - finding.repaired
    text = f"{finding.count:,} {what} ({finding.severity})"
    if finding.repaired:
        text += f", {finding.repaired:,} repaired, {remaining:,} left"
    if finding.examples:
        text += f"; examples: {', '.join(finding.examples[:5])}"
    return text


def check_results(report: reconciliation.ReconciliationReport) -> list[dg.AssetCheckResult]:
    results = []
    for finding in report.findings:
        remaining = finding.count - finding.repaired
        severe = finding.severity in {"critical", "error"}
        results.append(
            dg.AssetCheckResult(
                check_name=check_name(finding.finding),
                passed=remaining == 0,
                severity=dg.AssetCheckSeverity.ERROR if severe else dg.AssetCheckSeverity.WARN,
                description=describe_finding(finding),
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
