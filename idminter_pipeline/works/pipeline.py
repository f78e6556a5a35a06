"""The works pipeline: read works, mint every identifier they carry, write identified works.

Works go to the registry in batches, ONE `Minter.mint_ids` transaction per batch (500 works by
default). A bad work never sinks its batch, and never sends the batch back to one transaction per
work. Each work passes five stages, and a failure at any of them fails that work alone:

- `read`: the stored text is decoded here, not in the store, so text that is empty, not JSON, or
  JSON `null` / not an object fails its own work; so does an id the store does not hold;
- `extract`: a malformed document or source identifier, a document nested deeper than
  `MAX_DOCUMENT_DEPTH`, and conflicting source data: a document whose `state.sourceIdentifier`
  is not the `_id` it is stored under (which is also how two rows claiming one work show up: at
  most one of them can be stored under that work's id), or one id read twice in a batch. Such
  works are left out of the batch's mint request;
- `mint`: works whose predecessors (any node's, `works.predecessors`) conflict with or loop
  with another work's are failed before the registry is asked; if the minter refuses the batch
  for a missing predecessor, exactly the works that declared it are failed and the batch is
  re-run without them; a work carrying a source whose declaration was refused fails with it;
  the churn guard fails works here too;
- `annotate`: a node with no canonical ID, or already carrying a different one;
- `write`: the store refused the document;
- `notify`: with a downstream notifier, the works written are announced right after each batch's
  write; a work whose announcement still fails after retries fails here (it stays written, and
  re-running its scope announces it again). With `announce_once=True` (the Lambda's queued
  batches) they are announced after the run's last write instead, each canonical ID once however
  many batches wrote it.

A work whose canonical ID belongs to a newer record of its inheritance chain is **superseded**,
neither failed nor written: it does not replace that record's identified document and is not
announced (`works.succession`; `_settle` decides, the store's rank check makes it race-safe).
Two live successors of one chain are a conflict, reported by every run that meets it.

Every failure records the stage, the work's id and a readable detail. Errors that say nothing
about a particular work (the pool is exhausted, the registry or the store is unreachable) stop
the run: everything written before stays correct, and re-running is idempotent. A full run with
a job id, and a window run, record a checkpoint after each written batch (`works.checkpoints`) and
resume after it when run again (with that job id; of that window).

Each batch is written in one place, `_write`; announcing the written works downstream
(`_notify`) follows it in `_process_batch`, and the batch is then done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any, Protocol

from idminter_pipeline.core.errors import (
    ChainTooDeepError,
    InvalidInputError,
    MalformedWorkError,
    MissingPredecessorError,
)
from idminter_pipeline.core.limits import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    MIN_BATCH_SIZE,
    bounded_batch_size,
)
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Inheritance, MintOutcome, MintRequest, MintResult
from idminter_pipeline.works import predecessors
from idminter_pipeline.works.checkpoints import RunCheckpoints, WindowAlreadyRunningError
from idminter_pipeline.works.churn_guard import ChurnGuard, ChurnGuardPolicy, ChurnTrip
from idminter_pipeline.works.documents import (
    ExtractedWork,
    IdentifiedWork,
    IdentifierCache,
    Stage,
    annotate_work,
    decode_document,
    extract_work,
)
from idminter_pipeline.works.downstream import Announceable, Announced, DownstreamNotifier
from idminter_pipeline.works.ordering import Declaration, predecessors_first
from idminter_pipeline.works.run_summary import RunSummary, WorkFailure
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    FullScope,
    IdsScope,
    StoredWork,
    WindowScope,
    WorkScope,
    WorksStore,
    read_scope,
)
from idminter_pipeline.works.succession import (
    Contender,
    SuccessionPolicy,
    settle_batch,
)

logger = logging.getLogger(__name__)

# Each re-run removes at least one work, but a pathological batch must not loop for long.
MAX_MINT_ATTEMPTS = 4


def clamp_batch_size(batch_size: int) -> int:
    """The batch size to use: at most `MAX_BATCH_SIZE` (larger values are lowered to it); zero,
    negative and non-integer sizes are refused, naming the value."""
    return bounded_batch_size(batch_size, minimum=MIN_BATCH_SIZE, maximum=MAX_BATCH_SIZE)


class RegistryMinter(Protocol):
    """What the pipeline needs of `idminter_pipeline.registry.minting.Minter`."""

    def lookup_ids(self, sources: Iterable[SourceIdentifier]) -> dict[SourceIdentifier, str]: ...

    def mint_ids(
        self, requests: Iterable[MintRequest], *, job_id: str | None = None
    ) -> dict[SourceIdentifier, MintResult]: ...

    def inheritances(self, canonical_ids: Iterable[str]) -> list[Inheritance]: ...


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@contextmanager
def _failing_one_work(work_id: str, stage: Stage, failure: str) -> Iterator[None]:
    """Decoding, walking or editing one document concerns that document only: whatever the block
    raises fails the work `work_id` at `stage`, as `failure` and the error's own words (a
    MalformedWorkError already says which work and why)."""
    try:
        yield
    except MalformedWorkError:
        raise
    except Exception as error:
        raise MalformedWorkError(
            work_id, stage, f"{failure}: {type(error).__name__}: {error}"
        ) from error


class WorksPipeline:
    """Mints the works of a scope from `store` through `minter`, batch by batch.

    With `plan_ids_scope`, an ids scope larger than one batch (a Lambda invocation of up to
    10,000 queued records) is read twice: first for what each work declares, so the churn guard
    judges the whole run and each predecessor is minted before its successors; then minted batch
    by batch in that order. Its outcome then does not depend on the order of its ids.
    """

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
        succession: SuccessionPolicy | None = None,
        announce_once: bool = False,
        plan_ids_scope: bool = False,
    ) -> None:
        self.store = store
        self.plan_ids_scope = plan_ids_scope
        self.minter = minter
        self.batch_size = clamp_batch_size(batch_size)
        self.page_size = page_size
        self.churn_policy = churn_guard if churn_guard is not None else ChurnGuardPolicy()
        self.on_churn_trip = on_churn_trip
        self.record_processed = record_processed
        self.notifier = notifier
        self.succession = succession if succession is not None else SuccessionPolicy.from_env()
        # Written works not yet announced, kept light (no documents) until the run's end.
        self.announce_once = announce_once
        self._unannounced: list[Announced] = []

    def run(
        self,
        scope: WorkScope,
        *,
        job_id: str | None = None,
        checkpoints: RunCheckpoints | None = None,
    ) -> RunSummary:
        """Mint every work of `scope`. With `checkpoints` (a full scope with a job id, or a
        window), resume after the last batch an unfinished earlier run of it wrote, and record
        each batch."""
        started = time.perf_counter()
        summary = RunSummary(
            scope=scope.describe(),
            store=self.store.describe(),
            job_id=job_id,
            batch_size=self.batch_size,
        )
        checkpoints = self._begin(scope, job_id, checkpoints, summary)
        after = summary.resumed_from.position if summary.resumed_from else None
        self._unannounced = []
        guard = ChurnGuard(self.churn_policy)
        try:
            if (
                self.plan_ids_scope
                and isinstance(scope, IdsScope)
                and len(scope.ids) > self.batch_size
            ):
                scope = self._plan(scope, summary, guard)
            stored = read_scope(self.store, scope, page_size=self.page_size, after=after)
            for batch in _batches(stored, self.batch_size):
                read, written, failed = summary.works_read, summary.works_written, summary.failed
                self._process_batch(batch, summary, guard, job_id)
                position = batch[-1].position
                if checkpoints is not None and position is not None:
                    checkpoints.record(
                        position,
                        works_read=summary.works_read - read,
                        works_written=summary.works_written - written,
                        works_failed=summary.failed - failed,
                    )
            if checkpoints is not None:
                checkpoints.finish()
            if self.announce_once:
                # After the last write: a canonical ID written by two batches (a successor and
                # its predecessor) is announced once, with its final document in place.
                unannounced, self._unannounced = self._unannounced, []
                self._notify(unannounced, summary)
        finally:
            if checkpoints is not None:
                checkpoints.release()
            summary.duration_seconds = time.perf_counter() - started
        logger.info(
            "minted %s: %d works read, %d written, %d superseded, %d failed, %d minted, "
            "%d inherited",
            summary.scope,
            summary.works_read,
            summary.works_written,
            summary.works_superseded,
            summary.failed,
            summary.minted,
            summary.inherited,
        )
        return summary

    def _begin(
        self,
        scope: WorkScope,
        job_id: str | None,
        checkpoints: RunCheckpoints | None,
        summary: RunSummary,
    ) -> RunCheckpoints | None:
        """Take the run's checkpoint, `summary.resumed_from` set from it; the checkpoints to
        record in, or None for a run without."""
        if checkpoints is None:
            return None
        store = self.store.describe()
        if isinstance(scope, FullScope) and job_id is not None:
            summary.resumed_from = checkpoints.begin(job_id, store)
        elif isinstance(scope, WindowScope):
            try:
                summary.resumed_from = checkpoints.begin_window(scope, store)
            except WindowAlreadyRunningError as error:
                logger.warning("%s: this run mints the whole window without one", error)
                summary.checkpoint_held_elsewhere = True
                return None
        else:
            raise InvalidInputError("only a full run with a job id or a window can be resumed")
        if summary.resumed_from is not None:
            resumed = summary.resumed_from
            logger.info(
                "%s resumes after %s: %d batch(es), %d works, of an earlier run are not redone",
                summary.scope,
                resumed.position.describe(),
                resumed.batches,
                resumed.works_read,
            )
        return checkpoints

    def _plan(self, scope: IdsScope, summary: RunSummary, guard: ChurnGuard) -> IdsScope:
        """The scope's works, predecessors first, the churn guard's verdict on them all given."""
        cache: IdentifierCache = {}
        declared: dict[str, Declaration] = {}
        for stored in read_scope(self.store, scope, page_size=self.page_size):
            try:
                work = self._read_and_extract(stored, cache)
            except MalformedWorkError:
                continue  # failed, and reported, when its batch is processed
            declared.setdefault(
                work.work_id, Declaration(work.work_id, work.source, work.predecessor)
            )
        for trip in guard.judge(list(declared.values()), self.minter.lookup_ids):
            self._tripped(trip, summary)
        return IdsScope(tuple(predecessors_first(scope.ids, declared)))

    def _tripped(self, trip: ChurnTrip, summary: RunSummary) -> None:
        summary.churn_trips.append(trip)
        if self.on_churn_trip is not None:
            self.on_churn_trip(trip)

    def _process_batch(
        self,
        batch: list[StoredWork],
        summary: RunSummary,
        guard: ChurnGuard,
        job_id: str | None,
    ) -> list[IdentifiedWork]:
        """Read, extract, mint, annotate and write one batch; the works written."""
        summary.batches += 1
        summary.works_read += len(batch)
        works = self._extract(batch, summary)

        stopped, trips = guard.screen(list(works.values()), self.minter.lookup_ids)
        for trip in trips:
            self._tripped(trip, summary)
        for work_id, reason in stopped.items():
            summary.fail(WorkFailure(work_id, Stage.MINT, reason))
            del works[work_id]

        results = self._mint(works, summary, job_id)
        summary.identifiers_found += len(results)
        outcomes = Counter(result.outcome for result in results.values())
        summary.existing += outcomes[MintOutcome.EXISTING]
        summary.inherited += outcomes[MintOutcome.INHERITED]
        summary.minted += outcomes[MintOutcome.MINTED]
        ranks = self._settle(works, results, summary)
        canonical_ids = {source: result.canonical_id for source, result in results.items()}
        identified = self._annotate(works, canonical_ids, summary)
        written = self._write(identified, summary, ranks)
        if self.announce_once:
            self._unannounced.extend(Announced(w.canonical_id, w.source_id) for w in written)
        else:
            self._notify(written, summary)
        return written

    def _extract(self, batch: list[StoredWork], summary: RunSummary) -> dict[str, ExtractedWork]:
        """The `read` and `extract` stages: the batch's works by id, each validated."""
        cache: IdentifierCache = {}  # each distinct identifier is validated once per batch
        works: dict[str, ExtractedWork] = {}
        refused: set[str] = set()
        for stored in batch:
            try:
                extracted = self._read_and_extract(stored, cache)
            except MalformedWorkError as error:
                detail = error.detail
                if error.work_id != stored.id:
                    detail = f"{detail} (in {error.work_id})"
                summary.fail(WorkFailure(stored.id, Stage(error.stage), detail))
                continue
            work_id = extracted.work_id
            if work_id in works or work_id in refused:
                # The store returned one id twice (it changed under the scan): which copy is
                # right is not ours to guess.
                detail = (
                    f"the store returned {work_id} twice in one batch; neither copy is written "
                    "(re-run the scope)"
                )
                if works.pop(work_id, None) is not None:
                    summary.fail(WorkFailure(work_id, Stage.EXTRACT, detail))
                summary.fail(WorkFailure(work_id, Stage.EXTRACT, detail))
                refused.add(work_id)
                continue
            works[work_id] = extracted
        return works

    def _read_and_extract(self, stored: StoredWork, cache: IdentifierCache) -> ExtractedWork:
        if stored.content is None:
            raise MalformedWorkError(stored.id, Stage.READ, f"not found in {self.store.describe()}")
        with _failing_one_work(stored.id, Stage.READ, "unreadable"):
            document = decode_document(stored.content, work_id=stored.id)
        with _failing_one_work(stored.id, Stage.EXTRACT, "cannot be processed"):
            extracted = extract_work(document, document_id=stored.id, cache=cache)
        if extracted.work_id != stored.id:
            raise MalformedWorkError(
                stored.id,
                Stage.EXTRACT,
                f"state.sourceIdentifier is {extracted.work_id}, but the document is stored "
                f"under _id {stored.id}: the source index must key each work by its own "
                "identifier (is another row the real one?)",
            )
        return extracted

    def _annotate(
        self,
        works: Mapping[str, ExtractedWork],
        canonical_ids: Mapping[SourceIdentifier, str],
        summary: RunSummary,
    ) -> list[IdentifiedWork]:
        identified: list[IdentifiedWork] = []
        for work_id, extracted in works.items():
            try:
                with _failing_one_work(work_id, Stage.ANNOTATE, "cannot be annotated"):
                    identified.append(annotate_work(extracted, canonical_ids))
            except MalformedWorkError as error:
                summary.fail(WorkFailure(work_id, Stage.ANNOTATE, error.detail))
        return identified

    def _settle(
        self,
        works: dict[str, ExtractedWork],
        results: Mapping[SourceIdentifier, MintResult],
        summary: RunSummary,
    ) -> dict[str, int]:
        """Succession: takes the superseded works out of `works`; the rank of each other one."""
        minted = MintOutcome.MINTED
        contenders = [
            Contender(work_id, work.source.as_key(), result.canonical_id, result.outcome is minted)
            for work_id, work in works.items()
            if (result := results.get(work.source)) is not None
        ]
        verdict = settle_batch(contenders, self.minter.inheritances, self.succession)
        for conflict in verdict.conflicts:
            if conflict.canonical_id not in summary.succession_conflicts:
                summary.succession_conflicts[conflict.canonical_id] = conflict
                logger.warning("succession conflict: %s", conflict.describe())
        for work_id, held_by in verdict.superseded.items():
            del works[work_id]
            summary.supersede(work_id, held_by)
        return verdict.ranks

    def _write(
        self, identified: list[IdentifiedWork], summary: RunSummary, ranks: Mapping[str, int]
    ) -> list[IdentifiedWork]:
        """The `write` stage, the one place a batch is written; the works that were."""
        if not identified:
            return []
        # Built directly: `dataclasses.replace` costs several times as much per work.
        identified = [
            IdentifiedWork(
                work.canonical_id, work.source_id, work.document, ranks.get(work.source_id, 0)
            )
            for work in identified
        ]
        refused = {f.source_id: f for f in self.store.write_identified(identified)}
        written: list[IdentifiedWork] = []
        for work in identified:
            if (failure := refused.get(work.source_id)) is not None:
                if failure.superseded_by == work.source_id:
                    detail = (
                        "the stored document is this work's own with a higher succession rank "
                        "(the tie rule changed or a conflict was resolved): run idminter works "
                        "repair-succession --apply"
                    )
                    summary.fail(WorkFailure(work.source_id, Stage.WRITE, detail))
                elif failure.superseded_by is not None:
                    summary.supersede(work.source_id, failure.superseded_by)
                else:
                    summary.fail(WorkFailure(work.source_id, Stage.WRITE, failure.detail))
                continue
            written.append(work)
            summary.works_written += 1
            if self.record_processed:
                summary.processed.append(work.source_id)
                summary.written_canonical_ids[work.source_id] = work.canonical_id
        return written

    def _notify(self, written: Sequence[Announceable], summary: RunSummary) -> None:
        """The `notify` stage: announce the written works downstream."""
        if self.notifier is None or not written:
            return
        refused = self.notifier.notify(written)
        for failure in refused:
            summary.fail(WorkFailure(failure.work_id, Stage.NOTIFY, failure.detail))
        summary.works_notified += len(written) - len(refused)

    def _mint(
        self, works: dict[str, ExtractedWork], summary: RunSummary, job_id: str | None
    ) -> dict[SourceIdentifier, MintResult]:
        """The `mint` stage: one transaction for the batch's works, after failing those whose
        predecessors conflict or loop across works; a work naming a predecessor the registry
        lacks fails, and the batch is asked again without it (`works.predecessors`)."""
        self._refuse(works, predecessors.conflicts(works), summary)
        self._refuse(works, predecessors.cycles(works), summary)
        for _ in range(MAX_MINT_ATTEMPTS):
            if not works:
                return {}
            summary.mint_calls += 1
            try:
                return self.minter.mint_ids(
                    predecessors.batch_requests(works.values()), job_id=job_id
                )
            except (MissingPredecessorError, ChainTooDeepError) as error:
                refused = (
                    predecessors.missing(error, works)
                    if isinstance(error, MissingPredecessorError)
                    else predecessors.too_deep(error, works)
                )
                if not refused:
                    raise
                self._refuse(works, refused, summary)
        raise RuntimeError(  # pragma: no cover - each attempt removes at least one work
            f"the registry refused a batch {MAX_MINT_ATTEMPTS} times"
        )

    @staticmethod
    def _refuse(
        works: dict[str, ExtractedWork],
        refused: dict[str, list[predecessors.Refusal]],
        summary: RunSummary,
    ) -> None:
        """Fail the refused works at `mint`, and the works holding back what they declared."""
        while refused:
            for work_id in sorted(refused):
                del works[work_id]
                summary.fail(
                    WorkFailure(work_id, Stage.MINT, predecessors.describe(refused[work_id]))
                )
            refused = predecessors.held_back(works, refused)
