"""Predecessor declarations that loop: refused wherever they are met.

The minter refuses a call whose declarations loop (`registry.minting`), and document extraction
refuses a document whose own do (`works.documents`), naming the loop the same way. Pure, so that
extraction needs nothing of the registry's modules (importing those costs a Lambda's cold start
and the CLI's start-up their database drivers).
"""

from __future__ import annotations

from collections.abc import Mapping

from idminter_pipeline.core.errors import PredecessorCycleError
from idminter_pipeline.core.source_identifiers import SourceIdentifier


def reject_cycles(predecessors: Mapping[SourceIdentifier, SourceIdentifier | None]) -> None:
    """Raise `PredecessorCycleError` naming the loop if declarations loop (self included)."""
    done: set[SourceIdentifier] = set()
    declaring = [source for source, predecessor in predecessors.items() if predecessor is not None]
    for start in sorted(declaring, key=SourceIdentifier.as_key):
        path: list[SourceIdentifier] = []
        on_path: dict[SourceIdentifier, int] = {}
        current: SourceIdentifier | None = start
        while current is not None and current not in done:
            if current in on_path:
                raise PredecessorCycleError(path[on_path[current] :])
            on_path[current] = len(path)
            path.append(current)
            current = predecessors.get(current)
        done.update(path)
