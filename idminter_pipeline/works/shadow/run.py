"""A shadow run: the works pipeline end to end, with nothing written anywhere.

The run is `works.pipeline.WorksPipeline` itself, given two stand-ins:

- `ReadOnlyMinter` for the registry: lookups only, with placeholders for would-mint IDs;
- `_ComparingStore` for the works store: it reads source works from the real store, and where
  the pipeline would write an identified work it compares it with the reference instead.

So every stage a `mint` run applies (read, extract, mint planning, annotate) applies here, with
the same failures, and the comparison sees the documents `mint` would write. The churn guard is
off: it is a brake on minting, and a shadow run mints nothing. Succession is off too
(`ReadOnlyMinter.inheritances` reads no chains): a predecessor that `mint` would leave superseded
under its successor's document is compared like any other work, since the shadow checks IDs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.registry.connection import ConnectionFactory
from idminter_pipeline.registry.minting.read_only import ReadOnlyMinter
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy
from idminter_pipeline.works.documents import IdentifiedWork
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, WorksPipeline
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.shadow.compare import (
    Category,
    Difference,
    WorkComparison,
    compare_work,
    failed_work,
    is_placeholder,
    would_mint_placeholder,
)
from idminter_pipeline.works.shadow.reference import Reference
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    ReadThroughStore,
    StoredHolder,
    WorkScope,
    WorksStore,
    WriteFailure,
)

# A report lists at most this many differences of each kind; the counts are always complete.
MAX_LISTED_DIFFERENCES = 10_000


@dataclass
class ShadowReport:
    """What a shadow run found: one category per work, and the differences."""

    scope: str
    store: str
    reference: str
    registry: dict[str, Any]
    counts: Counter[str] = field(default_factory=Counter)
    would_mint_in_reference: int = 0
    unexpected: list[Difference] = field(default_factory=list)
    expected: list[Difference] = field(default_factory=list)
    summary: RunSummary | None = None
    duration_seconds: float = 0.0

    @property
    def unexpected_works(self) -> int:
        return self.counts[Category.DIFFER_UNEXPECTED]

    def add(self, comparison: WorkComparison) -> None:
        self.counts[comparison.category] += 1
        listed = {
            Category.DIFFER_UNEXPECTED: self.unexpected,
            Category.DIFFER_EXPECTED: self.expected,
        }.get(comparison.category)
        if listed is not None:
            room = MAX_LISTED_DIFFERENCES - len(listed)
            listed.extend(comparison.differences[: max(room, 0)])

    def as_dict(self) -> dict[str, Any]:
        summary = self.summary
        return {
            "scope": self.scope,
            "store": self.store,
            "reference": self.reference,
            "registry": self.registry,
            "works_read": summary.works_read if summary else 0,
            "works_compared": sum(self.counts.values()),
            "counts": {category.value: self.counts[category] for category in Category},
            "would_mint_in_reference": self.would_mint_in_reference,
            "identifiers": {
                "found": summary.identifiers_found if summary else 0,
                "existing": summary.existing if summary else 0,
                "inherited": summary.inherited if summary else 0,
                "would_mint": summary.minted if summary else 0,
            },
            "failures_by_stage": summary.failures_by_stage if summary else {},
            "unexpected_differences": [d.as_dict() for d in self.unexpected],
            "expected_differences": [d.as_dict() for d in self.expected],
            "written": 0,
            "duration_seconds": round(self.duration_seconds, 3),
        }


class _ComparingStore(ReadThroughStore):
    """Reads from `store`; what the pipeline would write is compared, never written."""

    refusal = "a shadow run writes nothing"

    def __init__(
        self, store: WorksStore, reference: Reference, minter: ReadOnlyMinter, report: ShadowReport
    ) -> None:
        super().__init__(store)
        self._reference = reference
        self._minter = minter
        self._report = report

    def write_identified(self, works: Sequence[IdentifiedWork]) -> list[WriteFailure]:
        theirs = self._reference.find(
            {
                work.source_id: None if is_placeholder(work.canonical_id) else work.canonical_id
                for work in works
            }
        )
        predecessor_ids = self._minter.predecessor_ids
        may_mint = self._minter.batch_would_mint > 0
        for work in works:
            reference = theirs.get(work.source_id)
            comparison = compare_work(
                work.source_id,
                work.document,
                reference,
                predecessor_ids=predecessor_ids,
                may_mint=may_mint,
            )
            if comparison.category is Category.WOULD_MINT and reference is not None:
                self._report.would_mint_in_reference += 1
            self._report.add(comparison)
        return []

    def get_identified(self, canonical_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        raise InvalidInputError("a shadow run reads no identified works from the store")

    def identified_holders(self, canonical_ids: Sequence[str]) -> dict[str, StoredHolder]:
        raise InvalidInputError("a shadow run reads no identified works from the store")

    def scan_identified(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        raise InvalidInputError("a shadow run reads no identified works from the store")

    def count_identified(self) -> int:
        return self.source.count_identified()


def shadow_run(
    store: WorksStore,
    reference: Reference,
    connect: ConnectionFactory,
    scope: WorkScope,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    outage_seconds: float | None = None,
) -> ShadowReport:
    """Compare every work of `scope` with `reference`, writing nothing (module docstring)."""
    started = time.perf_counter()
    with ReadOnlyMinter(
        connect, placeholder=would_mint_placeholder, outage_seconds=outage_seconds
    ) as minter:
        report = ShadowReport(
            scope=scope.describe(),
            store=store.describe(),
            reference=reference.describe(),
            registry=minter.target.as_dict(),
        )
        pipeline = WorksPipeline(
            _ComparingStore(store, reference, minter, report),
            minter,
            batch_size=batch_size,
            churn_guard=ChurnGuardPolicy(enabled=False),
            record_processed=False,
        )
        summary = pipeline.run(scope)
    report.summary = summary
    _add_failures(report, summary, reference)
    report.duration_seconds = time.perf_counter() - started
    return report


def _add_failures(report: ShadowReport, summary: RunSummary, reference: Reference) -> None:
    """Works this minter would fail are unexpected differences: named with their stage and
    detail (up to the pipeline's record limit), and all of them counted."""
    recorded = summary.failures
    theirs = reference.find({failure.work_id: None for failure in recorded}) if recorded else {}
    for failure in recorded:
        report.add(
            failed_work(
                failure.work_id, str(failure.stage), failure.detail, theirs.get(failure.work_id)
            )
        )
    report.counts[Category.DIFFER_UNEXPECTED] += summary.failed - len(recorded)
