"""Helpers for the works tests: sample documents and a filled free-ID pool."""

from __future__ import annotations

from typing import Any

from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.works.documents import SourceWork


def si(system: str, ontology: str, value: str) -> dict[str, Any]:
    return {"identifierType": {"id": system}, "ontologyType": ontology, "value": value}


def node(system: str, ontology: str, value: str) -> dict[str, Any]:
    return {
        "sourceIdentifier": si(system, ontology, value),
        "otherIdentifiers": [],
        "identifiedType": "Identified",
        "type": "Identifiable",
    }


def work(
    system: str,
    value: str,
    *,
    indexed_at: str = "2026-07-30T09:00:00.000Z",
    predecessor: tuple[str, str] | None = None,
    items: tuple[str, ...] = (),
) -> SourceWork:
    state: dict[str, Any] = {"sourceIdentifier": si(system, "Work", value)}
    if predecessor is not None:
        state["predecessorIdentifier"] = si(predecessor[0], "Work", predecessor[1])
    document = {
        "version": 1,
        "type": "Visible",
        "indexed_at": indexed_at,
        "data": {"items": [{"id": node("folio-item", "Item", i)} for i in items]},
        "state": state,
    }
    return SourceWork(f"Work[{system}/{value}]", document)


def fill_pool(connect, free: int = 5_000) -> None:
    top_up(connect, free)
