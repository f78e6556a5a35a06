"""After a registry restore: every canonical ID published since the restore point, kept.

Restoring the registry to an earlier point (Aurora point-in-time restore, a dump) forgets the
mappings minted after it, and its pool offers their canonical IDs again, although the identified
documents already published them. Before minting resumes, `recover_published` reads every
identified document in the works store (the published record: each identifiable node carries its
`sourceIdentifier` and `canonicalId`) and compares it with the registry:

- a mapping the registry holds as published: nothing to do;
- a mapping it lacks: registered again, to the published ID, and the ID marked assigned, so the
  pool never offers it (re-registering is the way to keep the ID with its record; retiring it
  would give the record a new public ID at its next mint); when the record declares a
  predecessor that holds the same ID, the inheritance is recorded again too, so that succession
  ranks it as a successor (a predecessor holding the ID is no conflict), and a predecessor the
  registry forgot, whose document the successor's replaced (its stored rank says it inherited),
  gets the ID back;
- a source the registry maps to another ID, or a published ID it maps to another record (minting
  resumed before this ran): a conflict, reported with both records, never changed here.

A dry run reports; `apply=True` writes, one transaction per batch, and records the run in
`registry_recoveries`, which the works asset's guard reads (`restore_guard`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from idminter_pipeline.core.errors import IdMinterError, MalformedWorkError
from idminter_pipeline.core.limits import MAX_CHAIN_DEPTH
from idminter_pipeline.core.reports import field_values
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.registry.recovery import (
    Restoration,
    RestoredInheritance,
    holders,
    last_recovery,
    newest_assignment,
    record_recovery,
    restore_mappings,
    statuses,
)
from idminter_pipeline.works.documents import extract_work
from idminter_pipeline.works.stores.base import WorksStore
from idminter_pipeline.works.succession import rank_depth, rank_seq

EXAMPLES = 100
DEFAULT_BATCH_DOCUMENTS = 1_000
T = TypeVar("T")


def _in_transaction(connect: ConnectionFactory, work: Callable[[Connection], T], what: str) -> T:
    """`work` in one transaction on a connection of its own, ridden through an outage (it is
    safe to repeat: everything it writes is keyed)."""

    def attempt() -> T:
        conn = connect()
        try:
            result = work(conn)
            conn.commit()
            return result
        finally:
            conn.close()

    return ride_out(attempt, what=what)


class RegistryRestoredError(IdMinterError):
    """The registry is older than what was already published: minting would reuse IDs."""

    def __init__(self, newest_assignment: datetime | None, published_until: datetime) -> None:
        self.newest_assignment = newest_assignment
        self.published_until = published_until
        super().__init__(
            f"the registry's newest assignment ({newest_assignment or 'none'}) is older than "
            f"IDs already published ({published_until}): it was restored to an earlier point. "
            "Minting now could give published IDs to other records; run `idminter db "
            "recover-published --apply` first (docs/operations/tasks.md, 'Restore the registry')"
        )


@dataclass
class Conflict:
    source: str
    published_id: str
    registry: str  # what the registry says instead


@dataclass
class RecoveryReport:
    store: str
    applied: bool
    documents: int = 0
    mappings_published: int = 0
    mappings_registered: int = 0
    mappings_restored: int = 0
    ids_reassigned: int = 0
    inheritances_restored: int = 0
    conflicts: int = 0
    unreadable_documents: int = 0
    restored_examples: list[dict[str, str]] = field(default_factory=list)
    conflict_examples: list[Conflict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        # A dry run reports what applying would do.
        to_do = {
            "mappings_restored": "mappings_to_restore",
            "ids_reassigned": "ids_to_reassign",
            "inheritances_restored": "inheritances_to_restore",
        }
        return field_values(self, renamed=None if self.applied else to_do)


def published_mappings(
    canonical_id: str, document: dict[str, Any]
) -> list[tuple[SourceIdentifier, str]]:
    """Every (source identifier, canonical ID) an identified document published."""
    return _published(canonical_id, document)[0]


@dataclass(frozen=True)
class _Successor:
    """A published work that declares a predecessor, and what each of its sources declares."""

    work: SourceIdentifier
    declared: dict[SourceIdentifier, SourceIdentifier]


def _published(
    canonical_id: str, document: dict[str, Any]
) -> tuple[
    list[tuple[SourceIdentifier, str]], dict[SourceIdentifier, SourceIdentifier], _Successor | None
]:
    """The document's published (source, canonical ID) pairs, the predecessor each of its
    sources declares, and the work as a successor, if it declares a predecessor."""
    extracted = extract_work(document, document_id=f"identified document {canonical_id}")
    pairs = [
        (node.source, node.node["canonicalId"])
        for node in extracted.nodes
        if isinstance(node.node.get("canonicalId"), str)
    ]
    predecessors = {d.source: d.predecessor for d in extracted.declarations()}
    successor = _Successor(extracted.source, predecessors) if extracted.predecessor else None
    return pairs, predecessors, successor


@dataclass
class _Batch:
    """Published (source, canonical ID) pairs of a batch of documents. Pairs, not a map: a source
    published under two IDs (minted again on the restored registry before the recovery ran) must
    be compared twice, once a conflict. `predecessors`: what each source declares."""

    pairs: set[tuple[SourceIdentifier, str]] = field(default_factory=set)
    predecessors: dict[SourceIdentifier, SourceIdentifier] = field(default_factory=dict)
    # The documents of works that declare a predecessor, by canonical ID.
    successors: dict[str, _Successor] = field(default_factory=dict)


def _batches(store: WorksStore, size: int, report: RecoveryReport) -> Iterator[_Batch]:
    """The published mappings, a batch per `size` documents."""
    batch = _Batch()
    documents = 0
    for canonical_id, document in store.scan_identified():
        report.documents += 1
        try:
            pairs, predecessors, successor = _published(canonical_id, document)
        except MalformedWorkError:
            report.unreadable_documents += 1
            continue
        batch.pairs.update(pairs)
        batch.predecessors.update(predecessors)
        if successor is not None:
            batch.successors[canonical_id] = successor
        documents += 1
        if documents >= size:
            yield batch
            batch, documents = _Batch(), 0
    if batch.pairs:
        yield batch


@dataclass
class _Planned:
    """The mappings earlier batches restore: a dry run has not written them, and a batch applied
    earlier wrote them under sources other than this batch's. A mapping (an item on several
    works) or an ID (shared through inheritance) published in documents of several batches
    counts once, and is nobody's conflict."""

    mappings: dict[SourceIdentifier, str] = field(default_factory=dict)
    holders: dict[str, set[str]] = field(default_factory=dict)

    def add(self, restorations: list[Restoration]) -> None:
        for restoration in restorations:
            self.mappings[restoration.source] = restoration.canonical_id
            self.holders.setdefault(restoration.canonical_id, set()).add(str(restoration.source))


def _settle_batch(
    batch: _Batch,
    minter: Minter,
    connect: ConnectionFactory,
    report: RecoveryReport,
    planned: _Planned,
) -> list[Restoration]:
    """The batch's missing mappings, given what earlier batches restore (`planned`)."""
    published = batch.pairs
    sources = {source for source, _ in published}
    registered = {
        **{source: planned.mappings[source] for source in sources & planned.mappings.keys()},
        **minter.lookup_ids(sources),
    }
    missing: dict[SourceIdentifier, str] = {}
    for source, canonical_id in sorted(published, key=lambda pair: (str(pair[0]), pair[1])):
        held = registered.get(source)
        if held == canonical_id:
            report.mappings_registered += 1
        elif held is not None:
            _conflict(report, Conflict(str(source), canonical_id, f"maps it to {held}"))
        elif missing.setdefault(source, canonical_id) != canonical_id:
            other = missing[source]
            _conflict(report, Conflict(str(source), canonical_id, f"also published as {other}"))
    if not missing:
        return []
    taken = _in_transaction(
        connect, lambda conn: holders(conn, list(missing.values())), "reading who holds IDs"
    )
    # Sources that share a published ID through an inheritance hold it together: those published
    # with it, and the predecessor a source declares (its document superseded, so unpublished).
    sharing: dict[str, set[str]] = {}
    for source, canonical_id in published:
        sharing.setdefault(canonical_id, set()).add(str(source))
    restorations = []
    for source, canonical_id in missing.items():
        predecessor = batch.predecessors.get(source)
        strangers = (
            taken.get(canonical_id, set())
            - sharing[canonical_id]
            - planned.holders.get(canonical_id, set())
            - ({str(predecessor)} if predecessor is not None else set())
        )
        if strangers:
            held_by = ", ".join(sorted(strangers))
            _conflict(report, Conflict(str(source), canonical_id, f"gave it to {held_by}"))
            continue
        restorations.append(Restoration(source, canonical_id))
    return restorations


def _superseded_predecessors(
    batch: _Batch,
    restorations: list[Restoration],
    store: WorksStore,
    minter: Minter,
    planned: _Planned,
) -> tuple[list[Restoration], dict[SourceIdentifier, int]]:
    """The mappings of predecessors whose documents their successors replaced, and the
    provenance `Seq` of each successor's inheritance.

    A successor's document ranked below the chain's original record (`succession.rank_depth`
    above 0) was written by a work that inherited its predecessor's ID: the predecessor held
    that ID, and the items and other nodes it carried held the IDs their successors' nodes
    publish. A predecessor the registry has forgotten gets its ID back, or minting it again
    would give it a new public ID and a second document. The rank also holds the inheritance's
    `Seq` (`succession.rank_seq`): recorded again with it, the successor ranks as it did."""
    restored = {r.source: r.canonical_id for r in restorations}
    candidates = {
        canonical_id: successor
        for canonical_id, successor in batch.successors.items()
        if restored.get(successor.work) == canonical_id
    }
    if not candidates:
        return [], {}
    ranks = store.identified_holders(list(candidates))
    inheritors = [
        (successor, ranks[canonical_id].rank)
        for canonical_id, successor in candidates.items()
        if canonical_id in ranks and rank_depth(ranks[canonical_id].rank) > 0
    ]
    seqs = {
        successor.work: seq for successor, rank in inheritors if (seq := rank_seq(rank)) is not None
    }
    claimed: dict[SourceIdentifier, str] = {}
    for successor, _ in inheritors:
        for source, predecessor in successor.declared.items():
            if source in restored:
                claimed.setdefault(predecessor, restored[source])
    known = minter.lookup_ids(set(claimed))
    back = [
        Restoration(predecessor, canonical_id)
        for predecessor, canonical_id in sorted(claimed.items(), key=lambda item: str(item[0]))
        if predecessor not in known
        and predecessor not in restored
        and predecessor not in planned.mappings
    ]
    return back, seqs


def _inheritances(
    restorations: list[Restoration],
    predecessors: dict[SourceIdentifier, SourceIdentifier],
    minter: Minter,
    planned: _Planned,
    seqs: dict[SourceIdentifier, int],
) -> list[RestoredInheritance]:
    """The restored mappings that inherited their predecessor's ID: the source declares a
    predecessor, and the predecessor holds the same ID (in the registry, restored by this batch
    or an earlier one). Their provenance went with the restore, and without it a successor
    ranks as a lone record below the document it published."""
    declared = {r.source: predecessors[r.source] for r in restorations if r.source in predecessors}
    if not declared:
        return []
    restored_here = {r.source: r.canonical_id for r in restorations}
    known = minter.lookup_ids(set(declared.values()))
    inherited = {}
    for source, predecessor in declared.items():
        held = (
            restored_here.get(predecessor)
            or planned.mappings.get(predecessor)
            or known.get(predecessor)
        )
        if held == restored_here[source]:
            inherited[source] = predecessor

    def depth(source: SourceIdentifier) -> int:
        # Within the batch's own chain of restored inheritances; bounded, as chains are, even
        # if two documents named each other as predecessors.
        steps = 1
        while inherited.get(source) in inherited and steps < MAX_CHAIN_DEPTH:
            source, steps = inherited[source], steps + 1
        return steps

    return [
        RestoredInheritance(
            source, predecessor, restored_here[source], depth(source), seqs.get(source)
        )
        for source, predecessor in inherited.items()
    ]


def _conflict(report: RecoveryReport, conflict: Conflict) -> None:
    report.conflicts += 1
    if len(report.conflict_examples) < EXAMPLES:
        report.conflict_examples.append(conflict)


def recover_published(
    store: WorksStore,
    minter: Minter,
    connect: ConnectionFactory,
    *,
    apply: bool,
    batch_documents: int = DEFAULT_BATCH_DOCUMENTS,
) -> RecoveryReport:
    """Compare every published mapping with the registry; with `apply`, restore the missing."""
    report = RecoveryReport(store=store.describe(), applied=apply)
    planned = _Planned()
    for batch in _batches(store, batch_documents, report):
        report.mappings_published += len(batch.pairs)
        restorations = _settle_batch(batch, minter, connect, report, planned)
        predecessors, seqs = _superseded_predecessors(batch, restorations, store, minter, planned)
        restorations += predecessors
        if not restorations:
            continue
        inheritances = _inheritances(restorations, batch.predecessors, minter, planned, seqs)
        ids = sorted({r.canonical_id for r in restorations})
        pool = _in_transaction(connect, lambda conn, ids=ids: statuses(conn, ids), "reading IDs")
        report.ids_reassigned += sum(
            1 for cid in ids if pool.get(cid) != "assigned" and cid not in planned.holders
        )
        planned.add(restorations)
        report.mappings_restored += len(restorations)
        report.inheritances_restored += len(inheritances)
        for restoration in restorations[: max(0, EXAMPLES - len(report.restored_examples))]:
            report.restored_examples.append(
                {"source": str(restoration.source), "canonical_id": restoration.canonical_id}
            )
        if apply:
            _in_transaction(
                connect,
                lambda conn, restorations=restorations, inheritances=inheritances: restore_mappings(
                    conn, restorations, inheritances
                ),
                f"restoring {len(restorations):,} published mapping(s)",
            )
    if apply:
        _in_transaction(
            connect,
            lambda conn: record_recovery(
                conn,
                documents=report.documents,
                restored=report.mappings_restored,
                reassigned=report.ids_reassigned,
                conflicts=report.conflicts,
                store=report.store,
            ),
            "recording the recovery",
        )
    return report


@dataclass(frozen=True)
class RestoreState:
    newest_assignment: datetime | None
    last_recovery: datetime | None


def read_restore_state(connect: ConnectionFactory) -> RestoreState:
    return _in_transaction(
        connect,
        lambda conn: RestoreState(newest_assignment(conn), last_recovery(conn)),
        "reading the registry's newest assignment",
    )


def restore_guard(state: RestoreState, published_until: datetime | None) -> None:
    """Refuse minting on a registry older than what was published (`published_until`: the
    newest assignment a run saw when it finished), unless a recovery ran since."""
    if published_until is None:
        return
    newest = state.newest_assignment
    if newest is not None and newest >= published_until:
        return
    if state.last_recovery is not None and state.last_recovery >= published_until:
        return
    raise RegistryRestoredError(newest, published_until)
