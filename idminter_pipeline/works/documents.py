"""Work documents: decode them, find every identifiable node, and annotate the minted ones.

Pure functions over JSON (see `work-documents.md` in the design documents), one per stage of the
pipeline, each failing only the work it was given:

- `decode_document` (stage `read`) turns the stored text into an object, or fails the work when
  the text is empty, not JSON, or JSON `null` / not an object;
- `extract_work` (stage `extract`) finds each object that has a `sourceIdentifier` key, at any
  depth, and the `predecessorIdentifier` any of them carries beside it (the work's own in
  `state`, an item's in its id object). Bare source identifiers (`otherIdentifiers`,
  `data.otherIdentifiers`) and predecessors themselves are never minted; a document naming two
  predecessors for one source, or predecessors that loop, is refused naming both places;
- `annotate_work` (stage `annotate`) sets `canonicalId` on each node `extract_work` found and
  turns `identifiedType` into `type` (`Identifiable` becomes `Identified`); nothing else changes.

Anything malformed raises `MalformedWorkError` naming the work, the stage and, for a node, its
JSON path, so the caller fails that one work and carries on with the rest of its batch.

Speed matters here (every work of every run goes through it), so:

- decoding uses orjson, which refuses NaN, Infinity, numbers that overflow a double and lone
  surrogates as the standard library does not. It turns integers beyond 64 bits into floats, so a
  text holding a run of 20 digits is parsed by `strict_json` instead, which keeps them exact. It
  keeps the last of duplicate keys: see docs/design/works-pipeline.md for why the stored text never
  holds any;
- documents are walked level by level, without recursion, and refused past
  `MAX_DOCUMENT_DEPTH` levels; JSON paths are only built to report an error;
- each distinct identifier is validated once per batch (`IdentifierCache`);
- annotation edits the decoded document in place, through the node references extraction kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from idminter_pipeline.core.errors import (
    InvalidSourceIdentifierError,
    MalformedWorkError,
    PredecessorCycleError,
)
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.predecessor_cycles import reject_cycles
from idminter_pipeline.core.source_identifiers import (
    SourceIdentifier,
    document_identifier,
    registered_ontology_type,
)
from idminter_pipeline.core.strict_json import DEFAULT_MAX_DEPTH, InvalidJsonError, json_type
from idminter_pipeline.core.strict_json import loads as strict_loads
from idminter_pipeline.works.json_paths import path_to


class Stage(StrEnum):
    """Where a work failed, in pipeline order."""

    READ = "read"
    EXTRACT = "extract"
    MINT = "mint"
    ANNOTATE = "annotate"
    WRITE = "write"
    # Written, but the downstream topic was not told (see `works/downstream.py`).
    NOTIFY = "notify"


WORK_ONTOLOGY_TYPE = "Work"
# The nesting a work document may have: the same bound `idminter works load` applies (through
# `strict_json`), so whatever the load accepts the pipeline accepts. Catalogue documents nest
# about a dozen levels.
MAX_DOCUMENT_DEPTH = DEFAULT_MAX_DEPTH
# The most distinct source identifiers one work may carry (its own, its nodes' and their
# predecessors), refused at `extract` beyond: one work's share of its batch's mint transaction and
# of its identified document stays bounded. Catalogue works carry up to a few thousand (items);
# the statements themselves are cut to the server's packet limit whatever the count
# (`registry.packets`), so this bounds one work, not a statement. Each identifier's parts are at
# most 255 characters (`source_identifiers.MAX_PART_LENGTH`; 1,020 bytes in UTF-8), also refused
# at `extract`.
MAX_IDENTIFIERS_PER_WORK = 50_000
# Keys whose values hold bare source identifiers: nothing under them is minted.
_BARE_IDENTIFIER_KEYS = frozenset({"sourceIdentifier", "otherIdentifiers", "predecessorIdentifier"})
_CONTAINERS = (dict, list)
_BRACKET_FORM = re.compile(r"[A-Za-z]+\[")
# orjson decodes integers beyond 64 bits as floats; any such integer has at least 20 digits. A
# table that maps every ASCII digit to "0" and every other byte to " " turns "is there a run of
# 20 digits" into a substring search (a regular expression takes ten times as long).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 20
# How much of unreadable stored text an error shows.
_TEXT_EXCERPT = 120

# (ontologyType, identifierType.id, value) as found in documents -> the validated identifier.
IdentifierCache = dict[tuple[str, str, str], SourceIdentifier]


@dataclass(frozen=True, slots=True)
class SourceWork:
    """A document to put into the source index: its `_id` there and its JSON object."""

    id: str
    document: Any


@dataclass(frozen=True, slots=True)
class IdentifiedWork:
    """An annotated document for the identified index, keyed by the work's canonical ID."""

    canonical_id: str
    source_id: str
    document: dict[str, Any]
    # Its succession rank (`works.succession`): a store refuses a lower rank over a higher one
    # under one canonical ID. 0 is unranked: written as before ranks existed.
    rank: int = 0


class IdentifiableNode(NamedTuple):
    """An object of the document that has a `sourceIdentifier`, and what it identifies (a tuple:
    one is made for every node of every work, and a frozen dataclass costs three times as much)."""

    node: dict[str, Any]
    source: SourceIdentifier


class DeclaredPredecessor(NamedTuple):
    """A node's `predecessorIdentifier`: the node (`state` for the work's own), the source it
    identifies, and the source whose canonical ID that one inherits when it is new."""

    node: dict[str, Any]
    source: SourceIdentifier
    predecessor: SourceIdentifier


@dataclass(frozen=True, slots=True)
class ExtractedWork:
    """What one document asks of the registry, and where its answers go."""

    work_id: str
    source: SourceIdentifier
    predecessor: SourceIdentifier | None
    nodes: tuple[IdentifiableNode, ...]
    document: dict[str, Any] = field(repr=False, compare=False)
    # The predecessors named by nodes other than `state` (items, images, ...), in document order.
    node_predecessors: tuple[DeclaredPredecessor, ...] = ()

    @property
    def identifiers(self) -> tuple[SourceIdentifier, ...]:
        """Distinct source identifiers, the work's own first."""
        return tuple(dict.fromkeys([self.source, *(node.source for node in self.nodes)]))

    def declarations(self) -> list[DeclaredPredecessor]:
        """Every predecessor the document names, the work's own first."""
        own = []
        if self.predecessor is not None:
            own.append(DeclaredPredecessor(self.document["state"], self.source, self.predecessor))
        return [*own, *self.node_predecessors]

    def predecessor_path(self, declared: DeclaredPredecessor) -> str:
        """The JSON path of a declaration's `predecessorIdentifier` (for error messages)."""
        return predecessor_path(self.document, declared.node)


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


# -- read ----------------------------------------------------------------------------------------


def _unreadable(work_id: str, detail: str) -> MalformedWorkError:
    return MalformedWorkError(work_id, Stage.READ, detail)


def _decode_text(text: bytes, work_id: str) -> Any:
    if not text.strip():
        raise _unreadable(work_id, f"the stored text is empty: {excerpt(text, _TEXT_EXCERPT)}")
    try:
        if _LONG_DIGIT_RUN not in text.translate(_DIGITS_AS_ZEROS):
            return orjson.loads(text)
        return strict_loads(text, what="the stored text")
    except orjson.JSONDecodeError as error:
        raise _unreadable(
            work_id,
            f"the stored text is not valid JSON ({error}): {excerpt(text, _TEXT_EXCERPT)}",
        ) from None
    except InvalidJsonError as error:
        raise _unreadable(
            work_id,
            f"the stored text is not valid JSON ({error.reason}): {excerpt(text, _TEXT_EXCERPT)}",
        ) from None


def decode_document(content: object, *, work_id: str) -> dict[str, Any]:
    """The work document a store returned: stored text (`str` or UTF-8 `bytes`) is decoded, an
    already decoded value (the Elasticsearch client's) is checked.

    Raises `MalformedWorkError` (stage `read`) for text that is empty or not JSON, and for a
    document that is JSON `null` or anything but an object.
    """
    if isinstance(content, bytes):
        document = _decode_text(content, work_id)
    elif isinstance(content, str):
        try:
            encoded = content.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _unreadable(
                work_id,
                f"the stored text holds {excerpt(content[error.start : error.end])}, which is "
                "not Unicode text (a lone surrogate)",
            ) from None
        document = _decode_text(encoded, work_id)
    else:
        document = content
    if not isinstance(document, dict):
        raise _unreadable(work_id, f"the stored document is {json_type(document)}, not an object")
    return document


def encode_document(document: Mapping[str, Any]) -> str:
    """JSON text of a decoded document (orjson; the standard encoder for what orjson cannot
    hold, such as integers beyond 64 bits that `strict_json` kept exact).

    Only for documents `decode_document` produced: orjson would write NaN as `null`, and neither
    decoder lets NaN or Infinity in.
    """
    try:
        return orjson.dumps(document).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(document, ensure_ascii=False, allow_nan=False)


# -- extract -------------------------------------------------------------------------------------


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


def _cached_identifier(value: Any, cache: IdentifierCache) -> SourceIdentifier | None:
    """The identifier `value` describes when it is well formed (validated once per cache), else
    None: the caller then goes the slow way, which names what is wrong and where."""
    try:
        key = (value["ontologyType"], value["identifierType"]["id"], value["value"])
        found = cache.get(key)
    except (KeyError, TypeError, IndexError):  # not objects, missing fields, unhashable values
        return None
    if found is not None:
        return found
    source = document_identifier(*key)
    if source is None:
        ontology_type, source_system, source_id = key
        if type(ontology_type) is not str or type(source_system) is not str:
            return None
        if type(source_id) is not str:
            return None
        try:
            source = SourceIdentifier(
                registered_ontology_type(ontology_type), source_system, source_id
            )
        except InvalidSourceIdentifierError:
            return None
    cache[key] = source
    return source


def _identifier(
    holder: dict[str, Any], key: str, cache: IdentifierCache, *, work_id: str, document: Any
) -> SourceIdentifier:
    """The identifier at `holder[key]`, validated (once per cache)."""
    value = holder[key]
    source = _cached_identifier(value, cache)
    if source is None:  # the slow way: raises, naming the problem
        path = f"{path_to(document, holder)}.{key}".lstrip(".")
        source = parse_bare_identifier(value, path, work_id)
    return source


def _identifiable_objects(document: dict[str, Any], work_id: str) -> list[dict[str, Any]]:
    """Every object with a `sourceIdentifier` key, breadth first, without recursion."""
    found: list[dict[str, Any]] = []
    level: list[Any] = [document]
    depth = 0
    # Locals, not globals and builtins, in the loop that visits every value of every document.
    is_instance, containers, bare_keys = isinstance, _CONTAINERS, _BARE_IDENTIFIER_KEYS
    while level:
        depth += 1
        if depth > MAX_DOCUMENT_DEPTH:
            raise _fail(
                work_id,
                f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels (at "
                f"{path_to(document, level[0]) or 'the root'}), the limit for work documents",
            )
        below: list[Any] = []
        keep = below.append
        # Empty arrays and objects (a third of a catalogue work's containers) hold nothing to
        # visit; only one level short of the limit are they kept, as they count for it.
        keep_empty = depth >= MAX_DOCUMENT_DEPTH
        for value in level:
            if is_instance(value, dict):
                if "sourceIdentifier" in value:
                    found.append(value)
                for key, child in value.items():
                    if (
                        is_instance(child, containers)
                        and (child or keep_empty)
                        and key not in bare_keys
                    ):
                        keep(child)
            else:
                for child in value:
                    if is_instance(child, containers) and (child or keep_empty):
                        keep(child)
        level = below
    return found


def _work_state(
    document: object, work_id: str, known: IdentifierCache
) -> tuple[dict[str, Any], dict[str, Any], SourceIdentifier, SourceIdentifier | None]:
    """The work `document`, its `state`, its own identifier and its predecessor's, checked."""
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
    source = _cached_identifier(state["sourceIdentifier"], known) or _identifier(
        state, "sourceIdentifier", known, work_id=work_id, document=document
    )
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
        predecessor = _cached_identifier(raw_predecessor, known) or _identifier(
            state, "predecessorIdentifier", known, work_id=work_id, document=document
        )
        if predecessor == source:
            raise _fail(
                work_id, "state.predecessorIdentifier: a work cannot be its own predecessor"
            )
    return document, state, source, predecessor


def extract_work(
    document: object, *, document_id: str, cache: IdentifierCache | None = None
) -> ExtractedWork:
    """Every identifier `document` needs minted, or `MalformedWorkError` (stage `extract`).

    `cache` carries validated identifiers between the works of a batch (a fresh one per call
    otherwise). The result keeps references into `document`, which `annotate_work` edits.
    """
    known: IdentifierCache = {} if cache is None else cache
    document, state, source, predecessor = _work_state(document, document_id, known)
    work_id = str(source)

    nodes: list[IdentifiableNode] = []
    declaring: list[IdentifiableNode] = []
    # Locals for the loop over every node; `tuple.__new__` builds the named tuple without the
    # Python-level `__new__` its class generates.
    add, known_get, make_identifier, new_node = (
        nodes.append,
        known.get,
        document_identifier,
        tuple.__new__,
    )
    for node in _identifiable_objects(document, work_id):
        # `_cached_identifier`, inlined: this runs for every node. A key seen before in the batch
        # is one lookup; a new one in the plain form is validated and built in one call; anything
        # else goes the slow way, which accepts it or names what is wrong.
        value = node["sourceIdentifier"]
        try:
            key = (value["ontologyType"], value["identifierType"]["id"], value["value"])
            found = known_get(key)
        except (KeyError, TypeError, IndexError):
            key = found = None
        if found is None:
            if key is not None:
                found = make_identifier(*key)
            if found is None:
                found = _identifier(
                    node, "sourceIdentifier", known, work_id=work_id, document=document
                )
            else:
                known[key] = found
        add(new_node(IdentifiableNode, (node, found)))
        if "predecessorIdentifier" in node and node is not state:
            declaring.append(nodes[-1])
    node_predecessors = (
        _node_predecessors(document, work_id, known, declaring, (source, predecessor))
        if declaring
        else ()
    )
    if len(nodes) + len(node_predecessors) + 2 > MAX_IDENTIFIERS_PER_WORK:
        # Only then is counting the distinct ones due.
        distinct = len(
            {
                source,
                predecessor,
                *(node.source for node in nodes),
                *(declared.predecessor for declared in node_predecessors),
            }
            - {None}
        )
        if distinct > MAX_IDENTIFIERS_PER_WORK:
            raise _fail(
                work_id,
                f"carries {distinct:,} distinct source identifiers; at most "
                f"{MAX_IDENTIFIERS_PER_WORK:,} per work are minted (MAX_IDENTIFIERS_PER_WORK)",
            )
    return ExtractedWork(work_id, source, predecessor, tuple(nodes), document, node_predecessors)


def predecessor_path(document: Any, node: dict[str, Any]) -> str:
    """The JSON path of `node`'s `predecessorIdentifier` inside `document`."""
    return f"{path_to(document, node)}.predecessorIdentifier".lstrip(".")


def _node_predecessors(
    document: dict[str, Any],
    work_id: str,
    known: IdentifierCache,
    declaring: list[IdentifiableNode],
    own: tuple[SourceIdentifier, SourceIdentifier | None],
) -> tuple[DeclaredPredecessor, ...]:
    """The predecessors that nodes other than `state` name (`null` names none), checked with
    the work's own: a node is not its own predecessor, one source has one predecessor within a
    document, and the declarations do not loop."""
    found: list[DeclaredPredecessor] = []
    for node, source in declaring:
        if node["predecessorIdentifier"] is None:
            continue
        predecessor = _cached_identifier(node["predecessorIdentifier"], known) or _identifier(
            node, "predecessorIdentifier", known, work_id=work_id, document=document
        )
        if predecessor == source:
            raise _fail(
                work_id,
                f"{predecessor_path(document, node)}: {source} cannot be its own predecessor",
            )
        found.append(DeclaredPredecessor(node, source, predecessor))
    if not found:
        return ()
    declarations = list(found)
    source, predecessor = own
    if predecessor is not None:
        declarations.insert(0, DeclaredPredecessor(document["state"], source, predecessor))
    first: dict[SourceIdentifier, DeclaredPredecessor] = {}
    for declared in declarations:
        earlier = first.setdefault(declared.source, declared)
        if earlier.predecessor != declared.predecessor:
            raise _fail(
                work_id,
                f"{predecessor_path(document, earlier.node)} and "
                f"{predecessor_path(document, declared.node)} name different predecessors for "
                f"{declared.source}: {earlier.predecessor} and {declared.predecessor}",
            )
    if len(first) > 1:
        try:
            reject_cycles({source: declared.predecessor for source, declared in first.items()})
        except PredecessorCycleError as error:
            places = " and ".join(predecessor_path(document, first[s].node) for s in error.cycle)
            raise _fail(work_id, f"{places} form a {error}") from None
    return tuple(found)


# -- annotate ------------------------------------------------------------------------------------


def annotate_work(
    extracted: ExtractedWork, canonical_ids: Mapping[SourceIdentifier, str]
) -> IdentifiedWork:
    """The document `extracted` came from, with every identifiable node carrying its canonical ID.

    Edits that document in place (the pipeline owns the freshly decoded copy; copy it first to
    keep the original). Raises `MalformedWorkError` (stage `annotate`), leaving the document
    untouched, when a node has no canonical ID, or already carries a different one: overwriting
    it would silently change a public identifier.
    """
    nodes = extracted.nodes
    canonical_id_of = canonical_ids.get
    assigned: list[str] = []
    keep = assigned.append
    for node, source in nodes:  # every node checked before any is touched
        canonical_id = canonical_id_of(source)
        if canonical_id is None or (
            "canonicalId" in node
            and node["canonicalId"] is not None
            and node["canonicalId"] != canonical_id
        ):
            raise _unannotatable(extracted, node, source, canonical_id)
        keep(canonical_id)
    for (node, _), canonical_id in zip(nodes, assigned, strict=True):
        node["canonicalId"] = canonical_id
        if "identifiedType" in node:
            node["type"] = node.pop("identifiedType")
        elif node.get("type") == "Identifiable":
            node["type"] = "Identified"
    return IdentifiedWork(canonical_ids[extracted.source], extracted.work_id, extracted.document)


def _unannotatable(
    extracted: ExtractedWork,
    node: dict[str, Any],
    source: SourceIdentifier,
    canonical_id: str | None,
) -> MalformedWorkError:
    path = path_to(extracted.document, node)
    if canonical_id is None:
        return MalformedWorkError(
            extracted.work_id, Stage.ANNOTATE, f"{path}: no canonical ID for {source}"
        )
    return MalformedWorkError(
        extracted.work_id,
        Stage.ANNOTATE,
        f"{path}.canonicalId is already {excerpt(node['canonicalId'], 80)}, but the registry "
        f"maps {source} to {canonical_id!r}",
    )
