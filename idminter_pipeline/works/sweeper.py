"""The sweeper: mint the works whose identified document is missing or older than their source.

Windows cover only the recent past: a source document written into a window that was already
processed (its `indexed_at` in the past) is never minted by the window runs. The sweeper audits a
scope, usually the whole source index (`works.audit`), and mints the difference by id, whatever
window each work fell in, in chunks, so memory stays flat however large the scope. Works the
audit finds failed (unreadable documents) are left to the failure reports: minting them again
would fail them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.reports import field_values
from idminter_pipeline.works.audit import (
    DIFFERENCE,
    LISTED_WORKS,
    AuditedWork,
    AuditReport,
    Inheritances,
    Lookup,
    audit_works,
)
from idminter_pipeline.works.reruns import RerunTotals
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.stores.base import IdsScope, WorkScope, WorksStore

SWEEPER_SOURCE = "idminter-pipeline/swept_works"
# Works minted per pipeline run of the sweeper.
SWEEP_CHUNK = 1_000

Mint = Callable[[IdsScope], RunSummary]


@dataclass
class SweepReport(RerunTotals):
    """What the sweeper found (the audit before minting) and what minting it did."""

    found: AuditReport

    @property
    def works_found(self) -> int:
        return self.found.difference_count

    def describe(self) -> str:
        if not self.works_found:
            return f"no work of {self.found.scope} is missing or stale"
        return (
            f"{self.works_found:,} work(s) of {self.found.scope} were missing or stale "
            f"(missing {self.found.counts['missing']:,}, stale {self.found.counts['stale']:,}); "
            f"minted: {self.works_written:,} written, {self.works_superseded:,} superseded, "
            f"{self.works_failed:,} failed"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.found.scope,
            "store": self.found.store,
            "works_in_scope": self.found.in_scope,
            "works_found": self.works_found,
            "found": {
                "missing": self.found.counts["missing"],
                "stale": self.found.counts["stale"],
            },
            "found_listed": [w.as_dict() for w in self.found.difference],
            **field_values(self, leave_out={"found"}),
        }


def sweep(
    store: WorksStore,
    lookup: Lookup,
    scope: WorkScope,
    mint: Mint,
    *,
    inheritances: Inheritances | None = None,
    chunk: int = SWEEP_CHUNK,
) -> SweepReport:
    """Audit `scope` and mint its difference by id, `chunk` works per `mint` call."""
    store.refresh()
    report = SweepReport(AuditReport(scope=scope.describe(), store=store.describe()))
    due: list[str] = []

    def mint_due() -> None:
        if due:
            report.add_run(mint(IdsScope(tuple(due))), listed=LISTED_WORKS)
            due.clear()

    work: AuditedWork
    for work in audit_works(store, lookup, scope, inheritances=inheritances):
        report.found.add(work)
        if work.outcome in DIFFERENCE:
            due.append(work.work_id)
            if len(due) >= chunk:
                mint_due()
    mint_due()
    return report


def found_works_alert(report: SweepReport, *, run_id: str | None = None) -> Alert:
    """People hear when the sweeper had work to do: something upstream writes late or loses
    works, which is worth knowing even when the sweeper put it right."""
    first = report.found.difference[0]
    return Alert(
        title=f"Sweeper found {report.works_found} missing or stale work(s)",
        runbook="Sweeper found {count} missing or stale work(s)",
        what_happened=report.describe() + ".",
        what_to_do=(
            "Nothing for the works written: they are minted now. Look at which works were "
            "found (swept_works' found_works, the first 100) and when their source documents "
            "were written: see the runbook for the usual causes. Failed ones are in the "
            "failed-works alert."
        ),
        figures={
            "works_found": report.works_found,
            "works_missing": report.found.counts["missing"],
            "works_stale": report.found.counts["stale"],
            "works_written": report.works_written,
            "works_failed": report.works_failed,
            "first_work": first.work_id,
        },
        severity=Severity.WARNING,
        source=SWEEPER_SOURCE,
        cause=f"{first.work_id}: {first.outcome}: {first.detail}",
        run_id=run_id,
    )
