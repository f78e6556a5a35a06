"""The source identifiers the works stores really use: every node's `sourceIdentifier` (and
`predecessorIdentifier`) in the source works and in the identified documents.

Adopting a registry the reference port created needs them (`registry.legacy_migration.
adopt.find_variants`): the port's collation matched a work's `B1161044X` to the row of
`b1161044x`, and only the forms works really send matter. Read as keys, unvalidated: a form
this project would refuse is still a form the port resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from idminter_pipeline.core.errors import MalformedWorkError
from idminter_pipeline.works.stores.base import WorksStore

Key = tuple[str, str, str]
# Canonical IDs per identified-document read.
IDENTIFIED_BATCH = 500


def document_keys(document: Any) -> Iterator[Key]:
    """Every `(ontologyType, identifierType.id, value)` a document's nodes carry."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for field in ("sourceIdentifier", "predecessorIdentifier"):
                identifier = value.get(field)
                try:
                    key = (
                        identifier["ontologyType"],
                        identifier["identifierType"]["id"],
                        identifier["value"],
                    )
                except (KeyError, TypeError):
                    continue
                if all(isinstance(part, str) for part in key):
                    yield key
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def store_keys(store: WorksStore, canonical_ids: Iterable[str]) -> Iterator[Key]:
    """The keys of every source work, then of the identified documents held under
    `canonical_ids` (the registry's assigned IDs: the store has no scan of identified works).
    A source document that cannot be decoded is skipped: it has no keys to send."""
    for stored in store.read_all():
        try:
            document = stored.decoded().document
        except MalformedWorkError:
            continue
        yield from document_keys(document)
    ids = iter(canonical_ids)
    while batch := list(islice(ids, IDENTIFIED_BATCH)):
        for document in store.get_identified(batch).values():
            yield from document_keys(document)
