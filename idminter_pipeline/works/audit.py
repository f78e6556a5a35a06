"""Every work accounted for: the works of a scope in the source store, each found in the stores.

A run's own counters can agree with themselves while works go missing (a scan that skipped a
page, a write acknowledged and lost). The audit does not read them: it reads the scope's works
from the source store and, for each, the identified store's document under the work's canonical
ID (a read-only registry lookup), and sorts the work into one outcome:

- `written`: the identified document is this work's, and not older than its source document;
- `superseded`: the identified document belongs to another work, named, which the registry's
  chains show is the newest record of this work's chain (`works.succession`);
- `failed`: the source document cannot be read or extracted (the reason is worked out again from
  the document itself), or the audited run reported the work failed, with its stage and reason;
- `skipped`: the audited run reported that it left the work out on purpose, with its reason;
- `missing` and `stale`: the difference. No identified document (or no canonical ID) for a
  readable work nobody reported failing, or one held by a work that is not its chain's newest
  record; or an identified document older than the source document (`indexed_at`): a source
  document written after its window was processed.

So the works in scope equal written + superseded + failed + skipped + the difference, each work
counted once, and the difference is named work by work. `swept` (the sweeper) mints the
difference, whatever window it fell in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import islice
from typing import Any, TypedDict, Unpack

import pandas as pd

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.errors import InvalidInputError, MalformedWorkError
from idminter_pipeline.core.reports import field_values
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Inheritance
from idminter_pipeline.works.documents import (
    ExtractedWork,
    IdentifierCache,
    Stage,
    decode_document,
    extract_work,
)
from idminter_pipeline.works.run_summary import WorkFailure
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    IdentifiedStamp,
    StoredWork,
    WorkScope,
    WorksStore,
    format_timestamp,
    parse_timestamp,
    read_scope,
)
from idminter_pipeline.works.succession import Chain, SuccessionPolicy, build_chains, work_name

# Works looked up and fetched together: one registry SELECT and one identified-store read each.
AUDIT_BATCH_SIZE = 1_000
# A report names this many works of the difference (and of the failed and skipped works); the
# counts are always complete.
LISTED_WORKS = 100

AUDIT_SOURCE = "idminter-pipeline/works-audit"

Lookup = Callable[[Iterable[SourceIdentifier]], Mapping[SourceIdentifier, str]]
Inheritances = Callable[[Iterable[str]], list[Inheritance]]


class Outcome(StrEnum):
    """What the stores say happened to one work of the scope."""

    WRITTEN = "written"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    SKIPPED = "skipped"
    MISSING = "missing"
    STALE = "stale"


ACCOUNTED = frozenset({Outcome.WRITTEN, Outcome.SUPERSEDED, Outcome.FAILED, Outcome.SKIPPED})
DIFFERENCE = frozenset({Outcome.MISSING, Outcome.STALE})
DIFFERENCE_COLUMNS = ["work_id", "outcome", "detail", "canonical_id"]


@dataclass(frozen=True, slots=True)
class AuditedWork:
    work_id: str
    outcome: Outcome
    detail: str = ""
    canonical_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return field_values(self)


@dataclass(frozen=True)
class RunReport:
    """What the audited run said of some works: failed (stage and reason) or skipped (reason),
    by work id. The audit takes these as the run's word only for works the stores do not show
    written, and names them."""

    failed: Mapping[str, str] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)


# The report's names for the works it lists (the counts are complete, the lists are not).
_LISTED_AS = {
    "difference": "difference_listed",
    "failed": "failed_listed",
    "skipped": "skipped_listed",
}


@dataclass
class AuditReport:
    scope: str
    store: str
    counts: Counter[str] = field(default_factory=Counter)
    difference: list[AuditedWork] = field(default_factory=list)
    failed: list[AuditedWork] = field(default_factory=list)
    skipped: list[AuditedWork] = field(default_factory=list)

    @property
    def in_scope(self) -> int:
        return sum(self.counts.values())

    @property
    def accounted(self) -> int:
        return sum(self.counts[outcome] for outcome in ACCOUNTED)

    @property
    def difference_count(self) -> int:
        return sum(self.counts[outcome] for outcome in DIFFERENCE)

    def add(self, work: AuditedWork) -> None:
        self.counts[work.outcome] += 1
        listed = (
            self.difference
            if work.outcome in DIFFERENCE
            else {Outcome.FAILED: self.failed, Outcome.SKIPPED: self.skipped}.get(work.outcome)
        )
        if listed is not None and len(listed) < LISTED_WORKS:
            listed.append(work)

    def difference_frame(self) -> pd.DataFrame:
        """The listed difference as a table (logs, notebooks)."""
        return pd.DataFrame([w.as_dict() for w in self.difference], columns=DIFFERENCE_COLUMNS)

    def describe(self) -> str:
        figures = ", ".join(f"{outcome} {self.counts[outcome]:,}" for outcome in Outcome)
        if not self.difference_count:
            return f"all {self.in_scope:,} works of {self.scope} accounted for ({figures})"
        first = self.difference[0]
        return (
            f"{self.difference_count:,} of {self.in_scope:,} works of {self.scope} are not "
            f"accounted for ({figures}); first: {first.work_id} ({first.outcome}: {first.detail})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **field_values(self, renamed=_LISTED_AS),
            "counts": {str(outcome): self.counts[outcome] for outcome in Outcome},
            "works_in_scope": self.in_scope,
            "accounted": self.accounted,
            "difference": self.difference_count,
        }


def _indexed_at(value: object) -> datetime | None:
    try:
        return parse_timestamp(value, what="indexed_at")
    except InvalidInputError:
        return None


@dataclass(frozen=True, slots=True)
class ReadableWork:
    """A source work that decodes and extracts, with its `indexed_at`."""

    stored: StoredWork
    extracted: ExtractedWork
    indexed_at: datetime | None


def readable(
    stored: StoredWork, cache: IdentifierCache | None = None
) -> ReadableWork | AuditedWork:
    """The work extracted as the pipeline would, or its failure (stage `read` or `extract`)."""
    if stored.content is None:
        return AuditedWork(stored.id, Outcome.FAILED, "read: not in the source store")
    try:
        document = decode_document(stored.content, work_id=stored.id)
        extracted = extract_work(document, document_id=stored.id, cache=cache)
    except MalformedWorkError as error:
        return AuditedWork(stored.id, Outcome.FAILED, f"{error.stage}: {error.detail}")
    if extracted.work_id != stored.id:
        return AuditedWork(
            stored.id,
            Outcome.FAILED,
            f"{Stage.EXTRACT}: state.sourceIdentifier is {extracted.work_id}, stored under "
            f"_id {stored.id}",
        )
    return ReadableWork(stored, extracted, _indexed_at(document.get("indexed_at")))


def _batches(items: Iterable[StoredWork], size: int) -> Iterator[list[StoredWork]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _held_elsewhere(
    work_id: str, holder: str, canonical_id: str, chains: Mapping[str, Chain] | None
) -> AuditedWork:
    """A work whose document another work holds: superseded when the holder is its chain's
    newest record (or when no chains are given to check against)."""
    chain = chains.get(canonical_id) if chains is not None else None
    if chains is None or (chain is not None and work_name(chain.holder) == holder):
        return AuditedWork(work_id, Outcome.SUPERSEDED, f"held by {holder}", canonical_id)
    if chain is not None and work_name(chain.holder) == work_id:
        detail = f"held by {holder}, but this work is the newest record of its chain"
    else:
        detail = f"held by {holder}, which is not the newest record of this work's chain"
    return AuditedWork(work_id, Outcome.MISSING, detail, canonical_id)


def _judge(  # noqa: PLR0911 (one return per outcome)
    work: ReadableWork,
    canonical_id: str | None,
    published: Mapping[str, IdentifiedStamp],
    reported: RunReport,
    chains: Mapping[str, Chain] | None,
) -> AuditedWork:
    work_id = work.stored.id
    stamp = published.get(canonical_id) if canonical_id else None
    holder = stamp.source_id if stamp is not None else None
    if holder and canonical_id and holder != work_id:
        return _held_elsewhere(work_id, holder, canonical_id, chains)
    if work_id in reported.failed:
        return AuditedWork(work_id, Outcome.FAILED, reported.failed[work_id], canonical_id)
    if work_id in reported.skipped:
        return AuditedWork(work_id, Outcome.SKIPPED, reported.skipped[work_id], canonical_id)
    if canonical_id is None:
        return AuditedWork(work_id, Outcome.MISSING, "no canonical ID in the registry")
    if stamp is None:
        return AuditedWork(
            work_id, Outcome.MISSING, "no identified document under its canonical ID", canonical_id
        )
    written_at = _indexed_at(stamp.indexed_at)
    if work.indexed_at is not None and (written_at is None or written_at < work.indexed_at):
        shown = format_timestamp(written_at) if written_at else "none"
        return AuditedWork(
            work_id,
            Outcome.STALE,
            f"identified document indexed_at {shown} is older than the source's "
            f"{format_timestamp(work.indexed_at)}",
            canonical_id,
        )
    return AuditedWork(work_id, Outcome.WRITTEN, "", canonical_id)


def audit_works(
    store: WorksStore,
    lookup: Lookup,
    scope: WorkScope,
    *,
    reported: RunReport | None = None,
    inheritances: Inheritances | None = None,
    batch_size: int = AUDIT_BATCH_SIZE,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Iterator[AuditedWork]:
    """One `AuditedWork` per work of `scope`, streamed in the store's order. Writes nothing:
    `lookup` and `inheritances` are registry reads (`Minter.lookup_ids`, `.inheritances`);
    with `inheritances`, a work whose document another holds is superseded only when the
    holder is its chain's newest record (`works.succession`)."""
    report = reported or RunReport()
    policy = SuccessionPolicy.from_env() if inheritances is not None else None
    for batch in _batches(read_scope(store, scope, page_size=page_size), batch_size):
        works: list[ReadableWork] = []
        cache: IdentifierCache = {}  # each distinct identifier validated once per batch
        for stored in batch:
            result = readable(stored, cache)
            if isinstance(result, AuditedWork):
                yield (
                    AuditedWork(stored.id, Outcome.FAILED, report.failed[stored.id])
                    if stored.id in report.failed
                    else result
                )
            else:
                works.append(result)
        found = lookup([work.extracted.source for work in works]) if works else {}
        canonical_ids = {work.stored.id: found.get(work.extracted.source) for work in works}
        wanted = sorted({cid for cid in canonical_ids.values() if cid is not None})
        published = store.identified_stamps(wanted) if wanted else {}
        chains = None
        if inheritances is not None and policy is not None:
            held = sorted(
                {
                    cid
                    for work in works
                    if (cid := canonical_ids[work.stored.id]) is not None
                    and (stamp := published.get(cid)) is not None
                    and stamp.source_id != work.stored.id
                }
            )
            chains = build_chains(inheritances(held), policy) if held else {}
        for work in works:
            yield _judge(work, canonical_ids[work.stored.id], published, report, chains)


class AuditOptions(TypedDict, total=False):
    """`audit_works`'s keyword arguments, which `audit` passes on."""

    reported: RunReport | None
    inheritances: Inheritances | None
    batch_size: int
    page_size: int


def audit(
    store: WorksStore, lookup: Lookup, scope: WorkScope, **options: Unpack[AuditOptions]
) -> AuditReport:
    """The counts of `audit_works` and the first works of the difference."""
    store.refresh()
    result = AuditReport(scope=scope.describe(), store=store.describe())
    for work in audit_works(store, lookup, scope, **options):
        result.add(work)
    return result


def run_report_of(
    failures: Sequence[WorkFailure], skipped: Mapping[str, str] | None = None
) -> RunReport:
    """A `RunReport` from a run summary's failures."""
    failed: dict[str, str] = {}
    for failure in failures:
        failed.setdefault(failure.work_id, f"{failure.stage}: {failure.detail}")
    return RunReport(failed=failed, skipped=dict(skipped or {}))


def difference_alert(
    reports: Sequence[tuple[str | None, AuditReport]], *, run_id: str | None = None
) -> Alert:
    """One alert for the works of one or more audited scopes that are not accounted for."""
    differing = [(key, report) for key, report in reports if report.difference_count]
    count = sum(report.difference_count for _, report in differing)
    in_scope = sum(report.in_scope for _, report in reports)
    first_key, first_report = differing[0]
    first = first_report.difference[0]
    keys = [key for key, _ in differing if key is not None]
    where = first_report.scope
    if keys:
        where = "windows " + ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" * (len(keys) > 5))
    missing = sum(report.counts[Outcome.MISSING] for _, report in differing)
    stale = sum(report.counts[Outcome.STALE] for _, report in differing)
    return Alert(
        title=f"{count} work(s) not accounted for",
        runbook="{count} work(s) not accounted for",
        what_happened=(
            f"Of {in_scope:,} works in the source store for {where}, {count:,} were neither "
            f"written, superseded, failed nor skipped: {missing:,} missing (no identified "
            f"document), {stale:,} stale (identified document older than the source document)."
        ),
        what_to_do=(
            "Read the difference listed on the every_work_accounted_for check (or `idminter "
            "works audit` over the same scope), then mint it: `idminter works sweep` over the "
            "scope, or materialize swept_works. A difference that comes back names a store or "
            "a scan that loses works: see the runbook."
        ),
        figures={
            "works_in_scope": in_scope,
            "works_not_accounted_for": count,
            "first_work": first.work_id,
            "first_outcome": str(first.outcome),
        },
        severity=Severity.WARNING,
        source=AUDIT_SOURCE,
        cause=f"{first.work_id}: {first.outcome}: {first.detail}",
        run_id=run_id,
        partition=first_key,
    )
