"""The minter's pure planning: what a mint call asks for and what it decides, without SQL.

`fold_requests` turns a call's `MintRequest`s into distinct sources and their declared
predecessors (refusing two different predecessors for one source; `core.predecessor_cycles`
refuses declarations that loop), and `BatchPlan` holds one attempt's plan: which sources exist,
which need a new ID, which inherit one along a predecessor chain, which mismatches to record in
`identifier_provenance`, and the `MintResult`s. `pad_space` and `collation_key` match server
rows back to requests the way the registry's collation compares them.

`minter` runs the plan's SQL in one transaction; the `idminter_pipeline.registry.minting`
package re-exports the public names here, so callers import them from there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from idminter_pipeline.core.errors import (
    ConflictingPredecessorsError,
    InvalidInputError,
    MissingPredecessorError,
)
from idminter_pipeline.core.source_identifiers import SourceIdentifier

Key = tuple[str, str, str]


def pad_space(value: str) -> str:
    """A value as the registry's collation compares it: trailing U+0020 spaces do not count.

    The key columns are `utf8mb4_bin`, which compares by code point but is PAD SPACE on MySQL 8.0
    and MariaDB 10.11: a legacy row `'b1 '` *is* the row a request for `'b1'` finds (and the one
    an insert of `'b1'` collides with). Matching server rows back to requests with plain string
    equality would drop such a request; any looser fold (case, other whitespace, Unicode
    normalization) would answer a request with another source's ID. This is the one place that
    rule lives: strip trailing spaces, nothing else.
    """
    return value.rstrip(" ")


def collation_key(ontology_type: str, source_system: str, source_id: str) -> Key:
    """The key under which the registry considers a stored source identifier equal to another."""
    return (pad_space(ontology_type), pad_space(source_system), pad_space(source_id))


def source_key(source: SourceIdentifier) -> Key:
    """A requested source's collation key. `SourceIdentifier` refuses leading and trailing
    whitespace, so its parts are already what `collation_key` would return."""
    return (source.ontology_type, source.source_system, source.source_id)


@dataclass(frozen=True)
class MintRequest:
    """Mint (or look up) `source`; if it is new, inherit the canonical ID of `predecessor`."""

    source: SourceIdentifier
    predecessor: SourceIdentifier | None = None


class MintOutcome(StrEnum):
    EXISTING = "existing"
    INHERITED = "inherited"
    MINTED = "minted"


@dataclass(frozen=True)
class MintResult:
    source: SourceIdentifier
    canonical_id: str
    outcome: MintOutcome


def _event_key(kind: str, successor: SourceIdentifier, predecessor: SourceIdentifier) -> bytes:
    # Unit and record separators cannot occur in a source identifier (control characters are
    # refused), so the encoding is unambiguous.
    text = "\x1e".join([kind, "\x1f".join(successor.as_key()), "\x1f".join(predecessor.as_key())])
    return hashlib.sha256(text.encode("utf-8")).digest()


_MISMATCH_ORDER = 1 << 30  # after every inheritance, so Seq lists a call's inheritances first


@dataclass(frozen=True)
class _Event:
    """A row for `identifier_provenance`."""

    kind: str
    successor: SourceIdentifier
    predecessor: SourceIdentifier
    canonical_id: str
    predecessor_canonical_id: str | None
    order: int

    @property
    def key(self) -> bytes:
        return _event_key(self.kind, self.successor, self.predecessor)


def _inheritance(
    source: SourceIdentifier, predecessor: SourceIdentifier, canonical_id: str, depth: int
) -> _Event:
    return _Event("inherited", source, predecessor, canonical_id, canonical_id, depth)


def _mismatch(
    source: SourceIdentifier,
    predecessor: SourceIdentifier,
    canonical_id: str,
    predecessor_id: str | None,
) -> _Event:
    return _Event(
        "predecessor_mismatch", source, predecessor, canonical_id, predecessor_id, _MISMATCH_ORDER
    )


class BatchPlan:
    """One mint attempt's requests by position, and every decision that needs no SQL.

    Positions and plain key tuples rather than `SourceIdentifier` dict keys: hashing a dataclass
    runs Python code, and a 10,000-key call would do it a dozen times per key.
    """

    def __init__(self, predecessors: dict[SourceIdentifier, SourceIdentifier | None]) -> None:
        self.sources = list(predecessors)
        self.declared = list(predecessors.values())
        self.keys = [(s.ontology_type, s.source_system, s.source_id) for s in self.sources]
        self.found: dict[Key, str] = {}
        count = len(self.sources)
        self.ids: list[str | None] = [None] * count
        self.outcomes: list[MintOutcome] = [MintOutcome.EXISTING] * count
        self.depths: list[int] = [0] * count
        self.new: list[int] = []
        self.new_set: set[int] = set()
        self.position: dict[Key, int] = (
            {key: i for i, key in enumerate(self.keys)}
            if any(p is not None for p in self.declared)
            else {}
        )

    def resolve_existing(self) -> None:
        get = self.found.get
        self.ids = [get(key) for key in self.keys]
        self.new = [i for i, canonical_id in enumerate(self.ids) if canonical_id is None]
        self.new_set = set(self.new)

    def committed_by(self, previous: dict[SourceIdentifier, MintResult]) -> bool:
        """Whether the registry now holds exactly what `previous` (the results of an attempt
        whose COMMIT lost its acknowledgement) wrote: every source registered with the ID that
        attempt gave it, and at least one of them new then. (If the lost COMMIT wrote no mapping,
        nothing tells whether it was applied, and the call is simply redone: its mismatch rows
        are upserts, so at worst their SeenCount counts the call twice.)"""
        if self.new or all(r.outcome is MintOutcome.EXISTING for r in previous.values()):
            return False
        return all(
            (result := previous.get(source)) is not None and result.canonical_id == canonical_id
            for source, canonical_id in zip(self.sources, self.ids, strict=True)
        )

    def check_predecessors_exist(self) -> None:
        missing = sorted(
            (
                (self.sources[i], predecessor)
                for i in self.new
                if (predecessor := self.declared[i]) is not None
                and source_key(predecessor) not in self.found
                and source_key(predecessor) not in self.position
            ),
            key=lambda pair: (source_key(pair[0]), source_key(pair[1])),
        )
        if missing:
            raise MissingPredecessorError(missing)

    def new_roots(self) -> list[int]:
        roots = [i for i in self.new if self.declared[i] is None]
        roots.sort(key=self.keys.__getitem__)
        return roots

    def plan(self, roots: list[int], claimed: list[str]) -> None:
        """Give every new source the ID it is to be inserted with. New roots take the claimed
        IDs in key order; every other new source takes the ID at the end of its predecessor
        chain (registered, or a new root), which is iterative because a chain may be as long
        as the batch. Cycles were refused before the transaction began."""
        for i, canonical_id in zip(roots, claimed, strict=True):
            self.ids[i], self.outcomes[i] = canonical_id, MintOutcome.MINTED
        inherited = MintOutcome.INHERITED
        for i in self.new:
            if self.ids[i] is not None:
                continue
            chain_: list[int] = []
            current: int | None = i
            canonical_id: str | None = None
            depth = 0
            while current is not None:
                if self.ids[current] is not None:
                    canonical_id, depth = self.ids[current], self.depths[current]
                    break
                chain_.append(current)
                predecessor = self.declared[current]
                assert predecessor is not None, "a new source without predecessor is a root"
                key = source_key(predecessor)
                current = self.position.get(key)
                if current is None:
                    canonical_id = self.found[key]
                    break
            assert canonical_id is not None
            for node in reversed(chain_):
                depth += 1
                self.ids[node], self.outcomes[node], self.depths[node] = (
                    canonical_id,
                    inherited,
                    depth,
                )

    def mismatches_of_existing(self) -> list[_Event]:
        """Registered sources whose declared predecessor has another ID (or none): recorded."""
        events = []
        for i, predecessor in enumerate(self.declared):
            if predecessor is None or i in self.new_set:
                continue  # new sources' mismatches (lost races) are recorded when settling
            key = source_key(predecessor)
            j = self.position.get(key)
            predecessor_id = self.ids[j] if j is not None else self.found.get(key)
            if predecessor_id != self.ids[i]:
                events.append(_mismatch(self.sources[i], predecessor, self.ids[i], predecessor_id))
        return events

    def results(self) -> dict[SourceIdentifier, MintResult]:
        return {
            source: MintResult(source, canonical_id, outcome)
            for source, canonical_id, outcome in zip(
                self.sources, self.ids, self.outcomes, strict=True
            )
        }


def _validated_sources(sources: Iterable[SourceIdentifier]) -> list[SourceIdentifier]:
    if isinstance(sources, str | bytes):
        raise InvalidInputError(f"expected source identifiers, got the string {sources!r}")
    unique: dict[SourceIdentifier, None] = {}
    for source in sources:
        if not isinstance(source, SourceIdentifier):
            raise InvalidInputError(
                f"expected a SourceIdentifier, got {type(source).__name__} {source!r}"
            )
        unique[source] = None
    return list(unique)


def fold_requests(
    requests: Iterable[MintRequest],
) -> dict[SourceIdentifier, SourceIdentifier | None]:
    """Distinct sources (in first-seen order) and their declared predecessor.

    A source requested twice with the same predecessor, or once with and once without one, is
    one request; two different predecessors for one source are refused.
    """
    if isinstance(requests, MintRequest):
        raise InvalidInputError("expected an iterable of MintRequest, got a single MintRequest")
    if isinstance(requests, str | bytes):
        raise InvalidInputError(f"expected an iterable of MintRequest, got {requests!r}")
    folded: dict[SourceIdentifier, SourceIdentifier | None] = {}
    conflicts: dict[SourceIdentifier, list[SourceIdentifier]] = {}
    for request in requests:
        if not isinstance(request, MintRequest):
            raise InvalidInputError(
                f"expected a MintRequest, got {type(request).__name__} {request!r}"
            )
        source, predecessor = request.source, request.predecessor
        if not isinstance(source, SourceIdentifier):
            raise InvalidInputError(f"MintRequest.source must be a SourceIdentifier: {source!r}")
        if predecessor is not None and not isinstance(predecessor, SourceIdentifier):
            raise InvalidInputError(
                f"MintRequest.predecessor of {source} must be a SourceIdentifier or None: "
                f"{predecessor!r}"
            )
        previous = folded.setdefault(source, predecessor)
        if previous is None:
            if predecessor is not None:
                folded[source] = predecessor
        elif predecessor is not None and predecessor != previous:
            conflicts.setdefault(source, [previous])
            if predecessor not in conflicts[source]:
                conflicts[source].append(predecessor)
    if conflicts:
        source = min(conflicts)
        raise ConflictingPredecessorsError(source, conflicts[source])
    return folded
