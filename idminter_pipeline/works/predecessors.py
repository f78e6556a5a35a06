"""Predecessors across a batch: what every declaration asks of the registry, and which works to
fail when declarations of different works disagree, loop, or name what the registry lacks.

Any identifiable node may name a `predecessorIdentifier` (the work's own in `state`, an item's in
its id object): a new source inherits its predecessor's canonical ID in the batch's one mint
transaction. One document's declarations are checked at extract (`documents.extract_work`);
here the batch's works are checked against each other before the registry is asked, so that
every conflict and every cycle fails the works declaring it at once, each naming the other:

- two works naming different predecessors for one source (`conflicts`);
- declarations of several works that loop (`cycles`);
- a predecessor neither registered nor minted in the batch (`missing`, from the minter's
  refusal, which lists them all).

A refused declaration holds its source back: a work that carries that source without declaring
a predecessor fails with it (`held_back`), since minting it there would give it a new ID for
good and its predecessor's could never be inherited.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from idminter_pipeline.core.errors import MissingPredecessorError, PredecessorCycleError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import MintRequest, reject_cycles
from idminter_pipeline.works.documents import DeclaredPredecessor, ExtractedWork

# A failure lists this many of a work's refused declarations; the rest are counted.
_SHOWN_PER_WORK = 3


@dataclass(frozen=True, slots=True)
class Refusal:
    """A declaration refused: the source it holds back, and why (naming its JSON path)."""

    source: SourceIdentifier
    detail: str


def batch_requests(works: Collection[ExtractedWork]) -> list[MintRequest]:
    """One request per distinct source of the batch, carrying the predecessor any work declares
    for it (the batch's declarations agree once `conflicts` has been applied)."""
    declared: dict[SourceIdentifier, SourceIdentifier | None] = {}
    for work in works:
        declared[work.source] = work.predecessor
    for work in works:
        for node in work.nodes:
            declared.setdefault(node.source, None)
        for declaration in work.node_predecessors:
            declared[declaration.source] = declaration.predecessor
    return [MintRequest(source, predecessor) for source, predecessor in declared.items()]


def _declaring(works: Mapping[str, ExtractedWork]) -> list[tuple[str, DeclaredPredecessor]]:
    return [
        (work_id, declaration)
        for work_id, work in works.items()
        if work.predecessor is not None or work.node_predecessors
        for declaration in work.declarations()
    ]


def conflicts(works: Mapping[str, ExtractedWork]) -> dict[str, list[Refusal]]:
    """Works naming a predecessor for a source that another work of the batch gives another
    one: every such work, each refusal naming the other work and its predecessor."""
    by_source: dict[SourceIdentifier, dict[SourceIdentifier, list[str]]] = {}
    for work_id, declaration in _declaring(works):
        named = by_source.setdefault(declaration.source, {})
        named.setdefault(declaration.predecessor, []).append(work_id)
    refused: dict[str, list[Refusal]] = {}
    for source, named in by_source.items():
        if len(named) < 2:
            continue
        for predecessor, work_ids in named.items():
            other, others = next((p, ids) for p, ids in named.items() if p != predecessor)
            for work_id in dict.fromkeys(work_ids):
                work = works[work_id]
                place = next(
                    work.predecessor_path(d)
                    for d in work.declarations()
                    if d.source == source and d.predecessor == predecessor
                )
                refused.setdefault(work_id, []).append(
                    Refusal(
                        source,
                        f"{place}: {source} is given predecessor {predecessor} here, but "
                        f"{other} by {others[0]} in the same batch",
                    )
                )
    return refused


def cycles(works: Mapping[str, ExtractedWork]) -> dict[str, list[Refusal]]:
    """Works whose declarations loop with other works' (one document's own loops were refused
    at extract): every work declaring a link of each cycle, each refusal naming the cycle and
    the works taking part."""
    refused: dict[str, list[Refusal]] = {}
    remaining = dict(works)
    while True:
        declaring = _declaring(remaining)
        if len(declaring) < 2:
            return refused
        links = {d.source: d.predecessor for _, d in declaring}
        try:
            reject_cycles(links)
        except PredecessorCycleError as error:
            members = set(error.cycle)
            involved = [(i, d) for i, d in declaring if d.source in members]
            if not involved:  # pragma: no cover - a cycle is made of declared links
                raise
            names = ", ".join(dict.fromkeys(work_id for work_id, _ in involved))
            for work_id, declaration in involved:
                place = remaining[work_id].predecessor_path(declaration)
                refused.setdefault(work_id, []).append(
                    Refusal(declaration.source, f"{place}: {error} (declared across works {names})")
                )
            for work_id, _ in involved:
                remaining.pop(work_id, None)
        else:
            return refused


def missing(
    error: MissingPredecessorError, works: Mapping[str, ExtractedWork]
) -> dict[str, list[Refusal]]:
    """The works that declared a predecessor the registry lacks, each refusal naming the path."""
    pairs = set(error.missing)
    refused: dict[str, list[Refusal]] = {}
    for work_id, declaration in _declaring(works):
        if (declaration.source, declaration.predecessor) in pairs:
            refused.setdefault(work_id, []).append(
                Refusal(
                    declaration.source,
                    f"{works[work_id].predecessor_path(declaration)} ({declaration.source}): "
                    f"predecessor {declaration.predecessor} is not in the registry (mint it "
                    "first, or fix the document)",
                )
            )
    return refused


def held_back(
    works: Mapping[str, ExtractedWork], refused: Mapping[str, list[Refusal]]
) -> dict[str, list[Refusal]]:
    """Works still in the batch that carry a source whose declaration was refused: minted
    without its predecessor, it would never inherit."""
    held = {refusal.source: work_id for work_id, found in refused.items() for refusal in found}
    if not held:
        return {}
    found: dict[str, list[Refusal]] = {}
    for work_id, work in works.items():
        if work_id in refused:
            continue
        for source in work.identifiers:
            if (by := held.get(source)) is not None:
                found.setdefault(work_id, []).append(
                    Refusal(
                        source,
                        f"carries {source}, whose predecessor as named by {by} was refused; "
                        "it is not minted without it",
                    )
                )
    return found


def describe(refusals: list[Refusal]) -> str:
    """One failure detail for a work's refusals."""
    shown = "; ".join(refusal.detail for refusal in refusals[:_SHOWN_PER_WORK])
    more = len(refusals) - _SHOWN_PER_WORK
    return f"{shown}; and {more} more" if more > 0 else shown
