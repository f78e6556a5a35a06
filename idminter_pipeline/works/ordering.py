"""The order in which a run mints its works when the order they were given in must not matter:
each predecessor before its successors, so a successor never reaches the registry before the
work it inherits from (`WorksPipeline(plan_ids_scope=True)`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from idminter_pipeline.core.source_identifiers import SourceIdentifier


class Declaration(NamedTuple):
    """What a work declares of its identity: all that ordering and the churn guard need."""

    work_id: str
    source: SourceIdentifier
    predecessor: SourceIdentifier | None


def predecessors_first(ids: Sequence[str], declared: Mapping[str, Declaration]) -> list[str]:
    """`ids` reordered so that a work whose predecessor is another work of `ids` comes after it
    (stable otherwise). A cycle is left as it is: the registry refuses it, naming it."""
    work_of = {d.source: d.work_id for d in declared.values()}
    depths: dict[str, int] = {}
    for start in declared:
        chain: list[str] = []
        current: str | None = start
        while current is not None and current not in depths and current not in chain:
            chain.append(current)
            predecessor = declared[current].predecessor
            current = work_of.get(predecessor) if predecessor is not None else None
        depth = -1 if current is None or current in chain else depths[current]
        for work_id in reversed(chain):
            depth += 1
            depths[work_id] = depth
    return sorted(ids, key=lambda work_id: depths.get(work_id, 0))
