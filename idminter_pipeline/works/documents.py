"""Work documents: find every identifiable node, and annotate the minted ones.

Pure functions over parsed JSON (see `work-documents.md` in the design documents):

- `extract_work` finds each object that has a `sourceIdentifier` key, at any depth, and the work's
  optional `state.predecessorIdentifier`. Bare source identifiers (`otherIdentifiers`,
  `data.otherIdentifiers`) and the predecessor itself are never minted.
- `annotate_work` copies the document and, on each identifiable node, sets `canonicalId` and turns
  `identifiedType` into `type` (`Identifiable` becomes `Identified`); nothing else changes.

Anything malformed raises `MalformedWorkError` naming the work, the stage and the JSON path, so
the caller fails that one work and carries on with the rest of its batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from idminter_pipeline.errors import (
    InvalidSourceIdentifierError,
    MalformedWorkError,
)
from idminter_pipeline.source_identifiers import SourceIdentifier, registered_ontology_type


class Stage(StrEnum):
    """Where a work failed."""

    EXTRACT = "extract"
    MINT = "mint"
    WRITE = "write"
    # Written, but the downstream topic was not told (see `works/downstream.py`).
    NOTIFY = "notify"


WORK_ONTOLOGY_TYPE = "Work"
# Keys whose values hold bare source identifiers: nothing under them is minted.
_BARE_IDENTIFIER_KEYS = frozenset({"sourceIdentifier", "otherIdentifiers", "predecessorIdentifier"})
_BRACKET_FORM = re.compile(r"[A-Za-z]+\[")


@dataclass(frozen=True, slots=True)
class SourceWork:
    """A document as read from the source index: its `_id` there and its parsed JSON."""

    id: str
    document: Any


@dataclass(frozen=True, slots=True)
class IdentifiedWork:
    """An annotated document for the identified index, keyed by the work's canonical ID."""

    canonical_id: str
    source_id: str
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdentifiableNode:
    path: str
    source: SourceIdentifier


@dataclass(frozen=True, slots=True)
class ExtractedWork:
    """What one document asks of the registry."""

    work_id: str
    source: SourceIdentifier
    predecessor: SourceIdentifier | None
    nodes: tuple[IdentifiableNode, ...]

    @property
    def identifiers(self) -> tuple[SourceIdentifier, ...]:
        """Distinct source identifiers, in document order (the work's own first)."""
        return tuple(dict.fromkeys([self.source, *(node.source for node in self.nodes)]))


def json_type(value: object) -> str:  # noqa: PLR0911
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def work_document_id(text: object) -> str:
    """The source index `_id` for a work: `Work[system/value]`.

    Accepts that form or the Step Functions form `system/value`, and rejects anything else with an
    error naming the value.
    """
    if not isinstance(text, str):
        raise InvalidSourceIdentifierError(
            text, f"expected a work identifier string, got {json_type(text)}"
        )
    if _BRACKET_FORM.match(text):
        source = SourceIdentifier.parse(text)
    else:
        system, separator, value = text.partition("/")
        if not separator:
            raise InvalidSourceIdentifierError(
                text, "expected 'source-system/source-id' or 'Work[source-system/source-id]'"
            )
        try:
            source = SourceIdentifier(WORK_ONTOLOGY_TYPE, system, value)
        except InvalidSourceIdentifierError as error:
            raise InvalidSourceIdentifierError(
                text, f"{error.part} {error.reason}", part=error.part
            ) from error
    if source.ontology_type != WORK_ONTOLOGY_TYPE:
        raise InvalidSourceIdentifierError(
            text, f"names a {source.ontology_type}, not a Work", part="ontology type"
        )
    return str(source)


def _fail(work_id: str, detail: str) -> MalformedWorkError:
    return MalformedWorkError(work_id, Stage.EXTRACT, detail)


def parse_bare_identifier(value: object, path: str, work_id: str) -> SourceIdentifier:
    """A document's `{"identifierType": {"id": ...}, "ontologyType": ..., "value": ...}`."""
    if not isinstance(value, dict):
        raise _fail(work_id, f"{path}: expected a source identifier object, got {json_type(value)}")
    identifier_type = value.get("identifierType")
    if not isinstance(identifier_type, dict):
        raise _fail(
            work_id, f"{path}.identifierType: expected an object, got {json_type(identifier_type)}"
        )
    fields = {
        "identifierType.id": identifier_type.get("id"),
        "ontologyType": value.get("ontologyType"),
        "value": value.get("value"),
    }
    for name, field_value in fields.items():
        if not isinstance(field_value, str):
            raise _fail(work_id, f"{path}.{name}: expected a string, got {json_type(field_value)}")
    try:
        return SourceIdentifier(
            registered_ontology_type(fields["ontologyType"]),
            fields["identifierType.id"],
            fields["value"],
        )
    except InvalidSourceIdentifierError as error:
        raise _fail(work_id, f"{path}: {error}") from error


def _copy_json(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, scalars): faster than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {key: _copy_json(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy_json(child) for child in value]
    return value


def _identifiable_nodes(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object with a `sourceIdentifier` key under `value`, in document order."""
    if isinstance(value, dict):
        if "sourceIdentifier" in value:
            yield path, value
        for key, child in value.items():
            if key in _BARE_IDENTIFIER_KEYS:
                continue
            yield from _identifiable_nodes(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _identifiable_nodes(child, f"{path}[{index}]")


def extract_work(document: object, *, document_id: str) -> ExtractedWork:
    """Every identifier `document` needs minted, or `MalformedWorkError` (stage `extract`)."""
    work_id = document_id
    if not isinstance(document, dict):
        raise _fail(work_id, f"document: expected an object, got {json_type(document)}")
    state = document.get("state")
    if not isinstance(state, dict):
        detail = (
            "has no 'state'" if state is None else f"expected an object, got {json_type(state)}"
        )
        raise _fail(work_id, f"state: {detail}")
    if "sourceIdentifier" not in state:
        raise _fail(work_id, "state.sourceIdentifier: missing")
    source = parse_bare_identifier(state["sourceIdentifier"], "state.sourceIdentifier", work_id)
    if source.ontology_type != WORK_ONTOLOGY_TYPE:
        raise _fail(
            work_id,
            f"state.sourceIdentifier: a work's ontology type must be Work, got "
            f"{source.ontology_type!r}",
        )
    work_id = str(source)

    predecessor = None
    raw_predecessor = state.get("predecessorIdentifier")
    if raw_predecessor is not None:
        predecessor = parse_bare_identifier(raw_predecessor, "state.predecessorIdentifier", work_id)
        if predecessor == source:
            raise _fail(
                work_id, "state.predecessorIdentifier: a work cannot be its own predecessor"
            )

    nodes: list[IdentifiableNode] = []
    for path, node in _identifiable_nodes(document, ""):
        if path != "state" and node.get("predecessorIdentifier") is not None:
            raise _fail(
                work_id,
                f"{path}.predecessorIdentifier: only the work itself (state) may name a "
                "predecessor",
            )
        nodes.append(
            IdentifiableNode(
                path,
                parse_bare_identifier(
                    node["sourceIdentifier"], f"{path}.sourceIdentifier", work_id
                ),
            )
        )
    return ExtractedWork(work_id, source, predecessor, tuple(nodes))


def annotate_work(
    document: dict[str, Any],
    extracted: ExtractedWork,
    canonical_ids: Mapping[SourceIdentifier, str],
) -> IdentifiedWork:
    """A copy of `document` with every identifiable node carrying its canonical ID.

    Raises `MalformedWorkError` (stage `mint`) when a node has no canonical ID, or already carries
    a different one: overwriting it would silently change a public identifier.
    """
    work_id = extracted.work_id
    annotated = _copy_json(document)
    found = list(_identifiable_nodes(annotated, ""))
    paths = [path for path, _ in found]
    if paths != [node.path for node in extracted.nodes]:
        raise MalformedWorkError(
            work_id, Stage.MINT, "document changed between extraction and annotation"
        )
    for (path, node), extracted_node in zip(found, extracted.nodes, strict=True):
        canonical_id = canonical_ids.get(extracted_node.source)
        if canonical_id is None:
            raise MalformedWorkError(
                work_id, Stage.MINT, f"{path}: no canonical ID for {extracted_node.source}"
            )
        present = node.get("canonicalId")
        if present is not None and present != canonical_id:
            raise MalformedWorkError(
                work_id,
                Stage.MINT,
                f"{path}.canonicalId is already {present!r}, but the registry maps "
                f"{extracted_node.source} to {canonical_id!r}",
            )
        node["canonicalId"] = canonical_id
        if "identifiedType" in node:
            node["type"] = node.pop("identifiedType")
        elif node.get("type") == "Identifiable":
            node["type"] = "Identified"
    return IdentifiedWork(canonical_ids[extracted.source], work_id, annotated)
