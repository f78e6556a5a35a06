"""One work, diagnosed: everything the registry and the works store know about it, in one report.

`diagnose` takes what an operator has in hand when a record's public page looks wrong: a work's
identifier in any form `mint` accepts (`Work[system/value]` or `system/value`) or the public
canonical ID. It reads, never writes:

- the source document and every source identifier in it (the work's own, its predecessor and
  each node's), with the canonical ID the registry holds for each;
- the registry's rows under the work's canonical ID with their provenance (original or alias,
  inherited from what, when, by which job);
- the succession chain under that canonical ID and which work of it owns the identified document;
- the identified document the store holds, and whose it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idminter_pipeline.core.canonical_ids import is_canonical_id
from idminter_pipeline.core.errors import IdMinterError, MalformedWorkError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.works.documents import extract_work, path_to, work_document_id
from idminter_pipeline.works.succession import SuccessionPolicy, build_chains, work_name

if TYPE_CHECKING:
    from idminter_pipeline.registry.minting import Minter
    from idminter_pipeline.works.stores.base import WorksStore


class UnknownWorkError(IdMinterError):
    """Neither the registry nor the works store knows the subject of a diagnosis."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(
            f"{excerpt(subject)} is known neither to the registry nor to the works store "
            f"(give Work[system/value], system/value or a canonical ID)"
        )


@dataclass(frozen=True)
class Subject:
    """What the operator asked about: a work (by its source index id) or a canonical ID."""

    work_id: str | None
    canonical_id: str | None


def parse_subject(text: str) -> Subject:
    """A canonical ID as itself; anything else as a work identifier in a form `mint` accepts."""
    if is_canonical_id(text):
        return Subject(work_id=None, canonical_id=text)
    return Subject(work_id=work_document_id(text), canonical_id=None)


def _source_section(
    work_id: str, store: WorksStore, minter: Minter
) -> tuple[dict[str, Any] | None, str | None]:
    """The source document's identifiers with their registered IDs, and the work's own ID."""
    stored = next(iter(store.read_ids([work_id])), None)
    if stored is None or stored.content is None:
        return None, None
    section: dict[str, Any] = {}
    try:
        work = extract_work(stored.decoded().document, document_id=work_id)
    except MalformedWorkError as error:
        section["unreadable"] = str(error)
        own = SourceIdentifier.parse(work_id)
        return section, minter.lookup_ids([own]).get(own)
    listed: list[tuple[str, SourceIdentifier]] = [("state.sourceIdentifier", work.source)]
    if work.predecessor is not None:
        listed.append(("state.predecessorIdentifier", work.predecessor))
    listed.extend(
        (path_to(work.document, node.node) + ".sourceIdentifier", node.source)
        for node in work.nodes
        if node.source != work.source
    )
    registered = minter.lookup_ids(source for _, source in listed)
    section["identifiers"] = [
        {"path": path, "source": str(source), "canonical_id": registered.get(source)}
        for path, source in listed
    ]
    return section, registered.get(work.source)


def _registry_section(canonical_id: str, minter: Minter) -> list[dict[str, Any]]:
    return [alias.as_dict() for alias in minter.aliases(canonical_id)]


def _succession_section(
    canonical_id: str, minter: Minter, policy: SuccessionPolicy
) -> dict[str, Any] | None:
    chain = build_chains(minter.inheritances([canonical_id]), policy).get(canonical_id)
    if chain is None:
        return None
    ranked = sorted(chain.ranks, key=lambda key: (-chain.ranks[key], key))
    conflict = chain.conflict()
    return {
        "members": [work_name(key) for key in ranked],
        "holder": work_name(chain.holder),
        "conflict": conflict.describe() if conflict else None,
    }


def _identified_section(canonical_id: str, store: WorksStore) -> dict[str, Any] | None:
    document = store.get_identified([canonical_id]).get(canonical_id)
    if document is None:
        return None
    holder = store.identified_holders([canonical_id]).get(canonical_id)
    return {"held_by": holder.source_id if holder else None, "document": document}


def diagnose(
    text: str, *, minter: Minter, store: WorksStore, policy: SuccessionPolicy
) -> dict[str, Any]:
    """The report on `text` (a work identifier or a canonical ID); `UnknownWorkError` when
    nothing knows it, `InvalidSourceIdentifierError` when it is neither form."""
    subject = parse_subject(text)
    source: dict[str, Any] | None = None
    canonical_id = subject.canonical_id
    if subject.work_id is not None:
        source, canonical_id = _source_section(subject.work_id, store, minter)
        if canonical_id is None:
            own = SourceIdentifier.parse(subject.work_id)
            canonical_id = minter.lookup_ids([own]).get(own)
    registry = _registry_section(canonical_id, minter) if canonical_id else []
    identified = _identified_section(canonical_id, store) if canonical_id else None
    if source is None and not registry and identified is None:
        raise UnknownWorkError(text)
    return {
        "work": subject.work_id,
        "canonical_id": canonical_id,
        "source_document": source,
        "registry": registry,
        "succession": _succession_section(canonical_id, minter, policy) if canonical_id else None,
        "identified_document": identified,
    }
