"""Source identifiers: the registry key `(OntologyType, SourceSystem, SourceId)`.

The pipeline writes one as `Work[sierra-system-number/b1161044x]`: the ontology type, then in
brackets the source system and the value, split at the first `/` (the value may contain `/`,
`[` and `]` itself).

Values are never trimmed, case-folded or normalized: a value the registry could not store
exactly is rejected with an error that names it (see docs/design/registry-schema.md for why each
rule exists).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Self

from idminter_pipeline.core.errors import InvalidSourceIdentifierError

MAX_PART_LENGTH = 255

# Ontology types under which the registry holds mappings. Documents also carry agent and concept
# subtypes; `registered_ontology_type` maps those onto `Concept` as the catalogue always has.
REGISTERED_ONTOLOGY_TYPES = frozenset({"Work", "Item", "Image", "Subject", "Concept"})
CONCEPT_SUBTYPES = frozenset(
    {"Person", "Organisation", "Place", "Agent", "Meeting", "Genre", "Period"}
)

# `\s` matches exactly what `str.isspace` calls whitespace.
_SYSTEM_FORBIDDEN = re.compile(r"[\s/\[\]]")
# Source systems already found plain (a catalogue has a few dozen): bounded, so odd input cannot
# grow it without limit.
_REMEMBERED_SOURCE_SYSTEMS = 1024
_PLAIN_SOURCE_SYSTEMS: set[str] = set()
_STRING_FORM = re.compile(r"(?P<ontology>[^\[\]/]*)\[(?P<system>[^\[\]/]*)/(?P<value>.*)\]", re.S)


def registered_ontology_type(ontology_type: str) -> str:
    """The ontology type a document's node is registered under (`Person` -> `Concept`)."""
    if ontology_type in CONCEPT_SUBTYPES:
        return "Concept"
    return ontology_type


def _reject_unstorable(value: str, part: str) -> None:
    if not value:
        raise InvalidSourceIdentifierError(value, "must not be empty", part=part)
    if len(value) > MAX_PART_LENGTH:
        raise InvalidSourceIdentifierError(
            value, f"is {len(value)} characters long; at most {MAX_PART_LENGTH} fit", part=part
        )
    if value != value.strip():
        # The key columns compare with PAD SPACE, and a trimmed copy would be a different key:
        # refusing is the only choice that neither merges nor changes anything.
        raise InvalidSourceIdentifierError(value, "has leading or trailing whitespace", part=part)
    if value.isascii() and value.isprintable():
        # The common case, without a per-character lookup: printable ASCII holds no control
        # character (Cc) and no surrogate (Cs).
        return
    for position, character in enumerate(value):
        category = unicodedata.category(character)
        if category == "Cc":
            raise InvalidSourceIdentifierError(
                value,
                f"contains control character U+{ord(character):04X} at position {position}",
                part=part,
            )
        if category == "Cs":
            raise InvalidSourceIdentifierError(
                value,
                f"contains unpaired surrogate U+{ord(character):04X} at position {position}, "
                "which no database column can hold",
                part=part,
            )


def _plain(value: object) -> bool:
    """Printable ASCII of 1 to 255 characters, not starting or ending with a space: a value
    `_reject_unstorable` accepts, checked without a per-character loop (in printable ASCII the
    space is the only whitespace, and there is no control character or surrogate)."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_PART_LENGTH
        and value.isascii()
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    )


def _plain_source_system(value: object) -> bool:
    """A source system every rule accepts, by `_plain` and the forbidden characters; the few
    distinct systems that pass are remembered, so a batch checks each of them once."""
    if type(value) is not str:
        return False
    if value in _PLAIN_SOURCE_SYSTEMS:
        return True
    if not (_plain(value) and _SYSTEM_FORBIDDEN.search(value) is None):
        return False
    if len(_PLAIN_SOURCE_SYSTEMS) < _REMEMBERED_SOURCE_SYSTEMS:
        _PLAIN_SOURCE_SYSTEMS.add(value)
    return True


@dataclass(frozen=True, order=True)
class SourceIdentifier:
    """A validated registry key. Construct it directly, or with `parse` from the string form."""

    # Slots by hand, for one more than the fields: the hash, computed once. A batch hashes each
    # identifier several times (its cache, the mint requests, the canonical-ID map, annotation
    # once per node), and the hash a dataclass generates builds and hashes a tuple every time.
    __slots__ = ("_hash", "ontology_type", "source_id", "source_system")

    ontology_type: str
    source_system: str
    source_id: str

    def __post_init__(self) -> None:
        self._check()
        object.__setattr__(
            self, "_hash", hash((self.ontology_type, self.source_system, self.source_id))
        )

    def __hash__(self) -> int:
        return self._hash  # type: ignore[no-any-return]

    def __getstate__(self) -> tuple[str, str, str]:
        # Not the hash: strings hash differently in another process.
        return (self.ontology_type, self.source_system, self.source_id)

    def __setstate__(self, state: tuple[str, str, str]) -> None:
        for name, value in zip(("ontology_type", "source_system", "source_id"), state, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_hash", hash(state))

    def _check(self) -> None:
        # The common case, in which every rule below holds, checked inline (a batch validates
        # each of its distinct identifiers: function calls here showed in the profile).
        source_id = self.source_id
        if (
            type(source_id) is str
            and 0 < len(source_id) <= MAX_PART_LENGTH
            and source_id.isascii()
            and source_id.isprintable()
            and source_id[0] != " "
            and source_id[-1] != " "
            and type(self.ontology_type) is str
            and self.ontology_type in REGISTERED_ONTOLOGY_TYPES
            and _plain_source_system(self.source_system)
        ):
            return
        for part, value in (
            ("ontology type", self.ontology_type),
            ("source system", self.source_system),
            ("source id", self.source_id),
        ):
            if not isinstance(value, str):
                raise InvalidSourceIdentifierError(
                    value, f"must be a string, got {type(value).__name__}", part=part
                )
            _reject_unstorable(value, part)
        if self.ontology_type not in REGISTERED_ONTOLOGY_TYPES:
            hint = " (register it as Concept)" if self.ontology_type in CONCEPT_SUBTYPES else ""
            raise InvalidSourceIdentifierError(
                self.ontology_type,
                f"unknown ontology type{hint}; expected one of "
                f"{', '.join(sorted(REGISTERED_ONTOLOGY_TYPES))}",
                part="ontology type",
            )
        if _SYSTEM_FORBIDDEN.search(self.source_system):
            raise InvalidSourceIdentifierError(
                self.source_system,
                "must not contain whitespace, '/', '[' or ']'",
                part="source system",
            )

    @classmethod
    def parse(cls, text: object) -> Self:
        """Parse `Work[sierra-system-number/b1161044x]`, naming the input if it is malformed."""
        if not isinstance(text, str):
            raise InvalidSourceIdentifierError(
                text, f"expected a string like 'Work[system/value]', got {type(text).__name__}"
            )
        match = _STRING_FORM.fullmatch(text)
        if match is None:
            raise InvalidSourceIdentifierError(
                text, "expected the form 'OntologyType[source-system/source-id]'"
            )
        try:
            return cls(match["ontology"], match["system"], match["value"])
        except InvalidSourceIdentifierError as error:
            raise InvalidSourceIdentifierError(
                text, f"{error.part} {error.reason}", part=error.part
            ) from error

    def as_key(self) -> tuple[str, str, str]:
        """The registry's primary-key tuple, in column order."""
        return (self.ontology_type, self.source_system, self.source_id)

    def __str__(self) -> str:
        return f"{self.ontology_type}[{self.source_system}/{self.source_id}]"


# The slots `SourceIdentifier` keeps its parts in, written directly by `document_identifier`: a
# frozen dataclass's `__init__` sets each through `object.__setattr__` and then calls
# `__post_init__`, three Python frames per identifier where one suffices.
_new_identifier = object.__new__
_set_ontology_type = SourceIdentifier.ontology_type.__set__  # type: ignore[attr-defined]
_set_source_system = SourceIdentifier.source_system.__set__  # type: ignore[attr-defined]
_set_source_id = SourceIdentifier.source_id.__set__  # type: ignore[attr-defined]
_set_hash = SourceIdentifier._hash.__set__  # type: ignore[attr-defined]
_REGISTERED_AS = {
    **{name: name for name in REGISTERED_ONTOLOGY_TYPES},
    **{name: "Concept" for name in CONCEPT_SUBTYPES},
}


def document_identifier(
    ontology_type: object, source_system: object, source_id: object
) -> SourceIdentifier | None:
    """The identifier a document's node names (`ontologyType`, `identifierType.id`, `value`,
    a concept subtype registered as `Concept`) when it is in the common, plain form that
    `SourceIdentifier.__post_init__` accepts without looking further; None otherwise, and the
    caller then constructs it the ordinary way, which accepts or names what is wrong.

    Extraction calls it once for each distinct identifier of a batch (most are distinct).
    """
    registered = _REGISTERED_AS.get(ontology_type) if type(ontology_type) is str else None
    if (
        registered is None
        or type(source_id) is not str
        or not 0 < len(source_id) <= MAX_PART_LENGTH
        or not source_id.isascii()
        or not source_id.isprintable()
        or source_id[0] == " "
        or source_id[-1] == " "
        or type(source_system) is not str
        or (
            # A catalogue has a few dozen systems: nearly always one already found plain.
            source_system not in _PLAIN_SOURCE_SYSTEMS and not _plain_source_system(source_system)
        )
    ):
        return None
    identifier = _new_identifier(SourceIdentifier)
    _set_ontology_type(identifier, registered)
    _set_source_system(identifier, source_system)
    _set_source_id(identifier, source_id)
    _set_hash(identifier, hash((registered, source_system, source_id)))
    return identifier
