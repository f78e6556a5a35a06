"""The works pipeline: read works, mint every identifier they carry, write identified works.

Works go to the registry in batches, ONE `Minter.mint_ids` transaction per batch (500 works by
default). A bad work never sinks its batch, and never sends the batch back to one transaction per
work:

- a work that fails extraction (malformed document, bad source identifier) is left out of the
  batch's mint request;
- if the minter refuses the batch for a reason that names works (a missing predecessor, two
  predecessors for one source, a predecessor cycle), exactly the works that declared those are
  failed and the batch is re-run once without them;
- annotation and write failures fail their own work;
- with a downstream notifier, the works written are announced right after each batch's write;
  a work whose announcement still fails after retries fails at stage `notify` (it stays
  written, and re-running its scope announces it again).

Every failure records the stage (`extract`, `mint`, `write`, `notify`), the work's `Work[...]` id
and a readable detail. Errors that say nothing about a particular work (the pool is exhausted, the
registry or the store is unreachable) stop the run: everything written before stays correct, and
re-running is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from idminter_pipeline.errors import (
    ConflictingPredecessorsError,
    InvalidInputError,
    MalformedWorkError,
    MissingPredecessorError,
    PredecessorCycleError,
)
from idminter_pipeline.registry.minting import MintOutcome, MintRequest, MintResult
from idminter_pipeline.source_identifiers import SourceIdentifier
from idminter_pipeline.works.churn_guard import ChurnGuard, ChurnGuardPolicy, ChurnTrip
from idminter_pipeline.works.documents import (
    ExtractedWork,
    IdentifiedWork,
    Stage,
    annotate_work,
    extract_work,
)
from idminter_pipeline.works.downstream import DownstreamNotifier
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    WorkScope,
    WorksStore,
    read_scope,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 5_000
# Each re-run removes at least one work, but a pathological batch must not loop for long.
MAX_MINT_ATTEMPTS = 4
# A summary keeps this many failures in full; the counts by stage are always complete.
MAX_RECORDED_FAILURES = 10_000


def clamp_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        raise InvalidInputError(f"batch_size must be an integer, got {batch_size!r}")
    return max(MIN_BATCH_SIZE, min(batch_size, MAX_BATCH_SIZE))


class RegistryMinter(Protocol):
    """What the pipeline needs of `idminter_pipeline.registry.minting.Minter`."""

    def lookup_ids(self, sources: Iterable[SourceIdentifier]) -> dict[SourceIdentifier, str]: ...

    def mint_ids(
        self, requests: Iterable[MintRequest], *, job_id: str | None = None
    ) -> dict[SourceIdentifier, MintResult]: ...


@dataclass(frozen=True)
class WorkFailure:
    work_id: str
    stage: Stage
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"sourceIdentifier": self.work_id, "stage": str(self.stage), "detail": self.detail}


@dataclass
class RunSummary:
    scope: str
    store: str
    job_id: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    works_read: int = 0
    works_written: int = 0
    batches: int = 0
    mint_calls: int = 0
    identifiers_found: int = 0
    existing: int = 0
    inherited: int = 0
    minted: int = 0
    failure_counts: Counter[str] = field(default_factory=Counter)
    failures: list[WorkFailure] = field(default_factory=list)
    churn_trips: list[ChurnTrip] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    # Written works the downstream topic accepted (0 when no notifier is configured).
    works_notified: int = 0

    @property
    def failures_by_stage(self) -> dict[str, int]:
        return {str(stage): self.failure_counts.get(str(stage), 0) for stage in Stage}

    @property
    def failed(self) -> int:
        return sum(self.failure_counts.values())

    def fail(self, failure: WorkFailure) -> None:
        self.failure_counts[str(failure.stage)] += 1
        if len(self.failures) < MAX_RECORDED_FAILURES:
            self.failures.append(failure)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "store": self.store,
            "job_id": self.job_id,
            "batch_size": self.batch_size,
            "works_read": self.works_read,
            "works_written": self.works_written,
            "works_failed": self.failed,
            "works_notified": self.works_notified,
            "batches": self.batches,
            "mint_calls": self.mint_calls,
            "identifiers_found": self.identifiers_found,
            "existing": self.existing,
            "inherited": self.inherited,
            "minted": self.minted,
            "failures_by_stage": self.failures_by_stage,
            "failures": [f.as_dict() for f in self.failures],
            "churn_guard_trips": [trip.reason for trip in self.churn_trips],
            "duration_seconds": round(self.duration_seconds, 3),
        }


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _requests(works: Iterable[ExtractedWork]) -> list[MintRequest]:
    requests = []
    for work in works:
        requests.append(MintRequest(work.source, work.predecessor))
        requests.extend(MintRequest(source) for source in work.identifiers[1:])
    return requests


def _offenders(error: Exception, works: Mapping[str, ExtractedWork]) -> set[str]:
    """The works (by id) that declared what the minter refused."""
    if isinstance(error, MissingPredecessorError):
        pairs = set(error.missing)
        return {i for i, w in works.items() if (w.source, w.predecessor) in pairs}
    if isinstance(error, ConflictingPredecessorsError):
        return {
            i
            for i, w in works.items()
            if w.source == error.source and w.predecessor in error.predecessors
        }
    if isinstance(error, PredecessorCycleError):
        cycle = set(error.cycle)
        return {i for i, w in works.items() if w.source in cycle and w.predecessor is not None}
    return set()


class WorksPipeline:
    """Mints the works of a scope from `store` through `minter`, batch by batch."""

    def __init__(
        self,
        store: WorksStore,
        minter: RegistryMinter,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        page_size: int = DEFAULT_PAGE_SIZE,
        churn_guard: ChurnGuardPolicy | None = None,
        on_churn_trip: Callable[[ChurnTrip], None] | None = None,
        record_processed: bool = True,
        notifier: DownstreamNotifier | None = None,
    ) -> None:
        self.store = store
        self.minter = minter
        self.batch_size = clamp_batch_size(batch_size)
        self.page_size = page_size
        self.churn_policy = churn_guard if churn_guard is not None else ChurnGuardPolicy()
        self.on_churn_trip = on_churn_trip
        self.record_processed = record_processed
        self.notifier = notifier

    def run(self, scope: WorkScope, *, job_id: str | None = None) -> RunSummary:
        started = time.perf_counter()
        summary = RunSummary(
            scope=scope.describe(),
            store=self.store.describe(),
            job_id=job_id,
            batch_size=self.batch_size,
        )
        guard = ChurnGuard(self.churn_policy)
        try:
            for batch in _batches(
                read_scope(self.store, scope, page_size=self.page_size), self.batch_size
            ):
                self._process_batch(batch, summary, guard, job_id)
        finally:
            summary.duration_seconds = time.perf_counter() - started
        logger.info(
            "minted %s: %d works read, %d written, %d failed, %d minted, %d inherited",
            summary.scope,
            summary.works_read,
            summary.works_written,
            summary.failed,
            summary.minted,
            summary.inherited,
        )
        return summary

    def _process_batch(
        self,
        batch: Sequence[tuple[str, Any | None]],
        summary: RunSummary,
        guard: ChurnGuard,
        job_id: str | None,
    ) -> None:
        summary.batches += 1
        summary.works_read += len(batch)
        documents, works = self._extract(batch, summary)

        stopped, trips = guard.screen(list(works.values()), self.minter.lookup_ids)
        for trip in trips:
            summary.churn_trips.append(trip)
            if self.on_churn_trip is not None:
                self.on_churn_trip(trip)
        for work_id, reason in stopped.items():
            summary.fail(WorkFailure(work_id, Stage.MINT, reason))
            del works[work_id]

        results = self._mint(works, summary, job_id)
        summary.identifiers_found += len(results)
        outcomes = Counter(result.outcome for result in results.values())
        summary.existing += outcomes[MintOutcome.EXISTING]
        summary.inherited += outcomes[MintOutcome.INHERITED]
        summary.minted += outcomes[MintOutcome.MINTED]
        canonical_ids = {source: result.canonical_id for source, result in results.items()}

        identified: list[IdentifiedWork] = []
        for work_id, extracted in works.items():
            try:
                identified.append(annotate_work(documents[work_id], extracted, canonical_ids))
            except MalformedWorkError as error:
                summary.fail(WorkFailure(work_id, Stage.MINT, error.detail))
        write_failures = {f.source_id: f.detail for f in self.store.write_identified(identified)}
        written: list[IdentifiedWork] = []
        for work in identified:
            if work.source_id in write_failures:
                summary.fail(
                    WorkFailure(work.source_id, Stage.WRITE, write_failures[work.source_id])
                )
            else:
                written.append(work)
                summary.works_written += 1
                if self.record_processed:
                    summary.processed.append(work.source_id)
        self._notify(written, summary)

    def _notify(self, written: Sequence[IdentifiedWork], summary: RunSummary) -> None:
        if self.notifier is None or not written:
            return
        refused = self.notifier.notify(written)
        for failure in refused:
            summary.fail(WorkFailure(failure.work_id, Stage.NOTIFY, failure.detail))
        summary.works_notified += len(written) - len(refused)

    def _extract(
        self, batch: Sequence[tuple[str, Any | None]], summary: RunSummary
    ) -> tuple[dict[str, Any], dict[str, ExtractedWork]]:
        documents: dict[str, Any] = {}
        works: dict[str, ExtractedWork] = {}
        for document_id, document in batch:
            if document is None:
                summary.fail(
                    WorkFailure(document_id, Stage.EXTRACT, f"not found in {self.store.describe()}")
                )
                continue
            try:
                extracted = extract_work(document, document_id=document_id)
            except MalformedWorkError as error:
                summary.fail(WorkFailure(error.work_id, Stage.EXTRACT, error.detail))
                continue
            if extracted.work_id in works:
                continue  # the same work twice in one batch is minted and written once
            works[extracted.work_id] = extracted
            documents[extracted.work_id] = document
        return documents, works

    def _mint(
        self, works: dict[str, ExtractedWork], summary: RunSummary, job_id: str | None
    ) -> dict[SourceIdentifier, MintResult]:
        for _ in range(MAX_MINT_ATTEMPTS):
            if not works:
                return {}
            summary.mint_calls += 1
            try:
                return self.minter.mint_ids(_requests(works.values()), job_id=job_id)
            except (
                MissingPredecessorError,
                ConflictingPredecessorsError,
                PredecessorCycleError,
            ) as error:
                offenders = _offenders(error, works)
                if not offenders:
                    raise
                for work_id in sorted(offenders):
                    declared = works.pop(work_id)
                    summary.fail(WorkFailure(work_id, Stage.MINT, _refusal(error, declared)))
        raise RuntimeError(  # pragma: no cover - each attempt removes at least one work
            f"the registry refused a batch {MAX_MINT_ATTEMPTS} times"
        )


def _refusal(error: Exception, work: ExtractedWork) -> str:
    if isinstance(error, MissingPredecessorError):
        return (
            f"predecessor {work.predecessor} is not in the registry (mint it first, or fix "
            "state.predecessorIdentifier)"
        )
    if isinstance(error, PredecessorCycleError):
        return f"predecessor cycle: {error}"
    return str(error)
