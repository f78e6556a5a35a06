"""Succession: which work of an inheritance chain owns the chain's one identified document.

A successor shares its predecessor's canonical ID (RFC 083), and the identified index keeps one
document per canonical ID, so every work of a chain competes for it. The newest record owns it:
a work never replaces the document of a work that inherited from it, directly or along a chain
(A <- B <- C: C's document stays, in whatever order A, B and C are processed).

Race-safe, not check-then-write: every write carries the work's **rank**, and both stores refuse
a lower rank over a higher one (Elasticsearch external versioning with `external_gte`, a
conditional upsert in SQLite), so the order in which concurrent runs write stops mattering. A
rank is one 63-bit integer (an Elasticsearch version), highest wins:

| bits | what | why |
|---|---|---|
| 62 | always 1 | above any version a document written before ranks existed can have |
| 54-61 | depth in the chain (the original record 0, its successor 1, ...) | newest record wins |
| 46-53 | precedence of the source system (`SuccessionPolicy`) | the tie rule, see below |
| 0-45 | 2^46 - 1 minus the inheritance's provenance `Seq` | the first successor to inherit wins |

So equal ranks mean the same work (a re-write of its own document, which replaces it). Two
*live* successors (records nobody inherited from) of one chain are a data conflict for people to
resolve: the outcome is deterministic (the highest rank holds the document, whichever is
processed last), and every run that meets it reports the conflict naming both works. The tie
rule between live successors at one depth is the configured precedence of source systems
(`IDMINTER_SUCCESSION_PRECEDENCE`, highest first; the RFC's merger precedence by default:
Axiell Collections over Sierra, Folio over CALM), then the earlier inheritance.

The chains are the works' alone: inheritances between items, images or concepts (any node may
name a predecessor) never decide which work owns a document.

Pure logic: the registry reads the inheritances (`registry.minting.chains`), the stores enforce
the ranks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.limits import MAX_CHAIN_DEPTH
from idminter_pipeline.core.settings import environment
from idminter_pipeline.registry.minting import Inheritance, Key
from idminter_pipeline.registry.minting.chains import chain_depths, chain_parents
from idminter_pipeline.works.documents import WORK_ONTOLOGY_TYPE

PRECEDENCE_ENV = "IDMINTER_SUCCESSION_PRECEDENCE"
# The RFC's merger precedence (Axiell Collections over Sierra, Folio over CALM), as one order:
# the systems that replace Sierra and CALM above the systems they replace.
DEFAULT_PRECEDENCE = (
    "axiell-collections-id",
    "folio-instance",
    "sierra-system-number",
    "calm-record-id",
)
RANKED = 1 << 62
DEPTH_SHIFT = 54
DEPTH_MASK = (1 << 8) - 1  # bits 54-61
MAX_DEPTH = MAX_CHAIN_DEPTH  # the minter refuses a successor deeper than the field holds
PRECEDENCE_SHIFT = 46
MAX_PRECEDENCE_SYSTEMS = (1 << 8) - 1
TIEBREAK_MAX = (1 << 46) - 1
_SYSTEM = re.compile(r"[^\s/\[\],]+")


def rank_depth(rank: int) -> int:
    """A stored rank's depth in its chain (0 for the original record, or a document written
    before ranks): above 0, the work inherited its canonical ID."""
    return (rank >> DEPTH_SHIFT) & DEPTH_MASK if rank & RANKED else 0


def rank_seq(rank: int) -> int | None:
    """The provenance `Seq` of the inheritance a stored rank was computed from (None for a rank
    that carries none: an original record's, or one written before ranks)."""
    if not rank & RANKED:
        return None
    seq = TIEBREAK_MAX - (rank & TIEBREAK_MAX)
    return seq or None


def work_name(key: Key) -> str:
    """A registry key as a work id: `Work[system/value]`."""
    return f"{key[0]}[{key[1]}/{key[2]}]"


@dataclass(frozen=True)
class SuccessionPolicy:
    """The tie rule between live successors at one depth: source systems, highest first.
    Systems not listed rank below every listed one."""

    precedence: tuple[str, ...] = DEFAULT_PRECEDENCE
    _order: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        systems = tuple(self.precedence)
        if len(systems) > MAX_PRECEDENCE_SYSTEMS:
            raise InvalidInputError(
                f"{PRECEDENCE_ENV}: at most {MAX_PRECEDENCE_SYSTEMS} systems, got {len(systems)}"
            )
        for system in systems:
            if not isinstance(system, str) or not _SYSTEM.fullmatch(system):
                raise InvalidInputError(
                    f"{PRECEDENCE_ENV}: {excerpt(system, 80)} is not a source system name"
                )
        if len(set(systems)) != len(systems):
            twice = sorted({s for s in systems if systems.count(s) > 1})
            raise InvalidInputError(f"{PRECEDENCE_ENV}: {', '.join(twice)} listed twice")
        object.__setattr__(self, "precedence", systems)
        order = {system: len(systems) - index for index, system in enumerate(systems)}
        object.__setattr__(self, "_order", order)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SuccessionPolicy:
        """`IDMINTER_SUCCESSION_PRECEDENCE`: comma-separated source systems, highest first."""
        text = environment(environ).get(PRECEDENCE_ENV, "").strip()
        if not text:
            return cls()
        return cls(tuple(part.strip() for part in text.split(",")))

    def rank(self, source_system: str, depth: int, seq: int | None) -> int:
        """The rank a work writes with (see the module docstring)."""
        tiebreak = TIEBREAK_MAX - min(seq or 0, TIEBREAK_MAX)
        return (
            RANKED
            | min(depth, MAX_DEPTH) << DEPTH_SHIFT
            | self._order.get(source_system, 0) << PRECEDENCE_SHIFT
            | tiebreak
        )

    def lone_rank(self, key: Key) -> int:
        """The rank of a work nobody inherited from and that inherited from nobody."""
        return self.rank(key[1], 0, None)


@dataclass(frozen=True)
class SuccessionConflict:
    """Two or more live successors share `canonical_id`: `holder` keeps the document."""

    canonical_id: str
    holder: str
    others: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"{self.canonical_id} has {len(self.others) + 1} live successors: {self.holder} "
            f"holds the document over {', '.join(self.others)} (tie rule: depth, then "
            f"{PRECEDENCE_ENV}, then the earlier inheritance); decide which record succeeds "
            "and re-point the other's mapping"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"canonicalId": self.canonical_id, "heldBy": self.holder, "others": self.others}


@dataclass(frozen=True)
class Chain:
    """The sources that share one canonical ID through inheritances, ranked."""

    canonical_id: str
    ranks: dict[Key, int]
    # Records nobody inherited from, holder first.
    leaves: tuple[Key, ...]
    # The depth of its deepest record (the original record being 0).
    deepest: int = 1

    @property
    def too_deep(self) -> bool:
        """Deeper than a rank can order (the minter refuses such a successor; a registry may
        hold one written before it did)."""
        return self.deepest > MAX_DEPTH

    @property
    def holder(self) -> Key:
        return self.leaves[0]

    def conflict(self) -> SuccessionConflict | None:
        if len(self.leaves) < 2:
            return None
        return SuccessionConflict(
            self.canonical_id,
            work_name(self.holder),
            tuple(work_name(key) for key in self.leaves[1:]),
        )


def build_chains(inheritances: Iterable[Inheritance], policy: SuccessionPolicy) -> dict[str, Chain]:
    """Each canonical ID's chain, from its works' inheritances: only a work inheriting from a
    work makes a chain. An item, image or concept inheriting its predecessor's ID (a Folio item
    keeping its Sierra item's) shares no identified document, so it neither owns one nor takes
    one from a work, even if its declaration crossed ontology types."""
    by_id: dict[str, list[Inheritance]] = {}
    for inheritance in inheritances:
        if (
            inheritance.successor[0] != WORK_ONTOLOGY_TYPE
            or inheritance.predecessor[0] != WORK_ONTOLOGY_TYPE
        ):
            continue
        by_id.setdefault(inheritance.canonical_id, []).append(inheritance)
    return {cid: _chain(cid, edges, policy) for cid, edges in by_id.items()}


def _chain(canonical_id: str, edges: list[Inheritance], policy: SuccessionPolicy) -> Chain:
    if len(edges) == 1 and edges[0].successor != edges[0].predecessor:
        # Nearly every chain is one record and its successor: the general walk below gives
        # the same ranks and leaves, at several times the cost per chain (`settle_batch` builds
        # one per chained canonical ID of every batch).
        edge = edges[0]
        successor, predecessor = edge.successor, edge.predecessor
        ranks = {
            successor: policy.rank(successor[1], 1, edge.seq),
            predecessor: policy.rank(predecessor[1], 0, None),
        }
        return Chain(canonical_id, ranks, (successor,))
    parent = chain_parents(edges)
    depths = chain_depths(parent)
    members = depths.keys()
    ranks = {
        key: policy.rank(key[1], depths[key], parent[key].seq if key in parent else None)
        for key in members
    }
    inherited_from = {edge.predecessor for edge in parent.values()}
    leaves = [key for key in members if key not in inherited_from] or list(members)
    leaves.sort(key=lambda key: (-ranks[key], key))
    return Chain(canonical_id, ranks, tuple(leaves), max(depths.values()))


@dataclass
class BatchSuccession:
    """One batch's verdict: the rank each owning work writes with, the works superseded (work
    id -> the work holding the document), and the conflicts met."""

    ranks: dict[str, int] = field(default_factory=dict)
    superseded: dict[str, str] = field(default_factory=dict)
    conflicts: list[SuccessionConflict] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Contender:
    """A work of a batch: its id, its own registry key, its canonical ID, and whether that ID
    was minted for it in this batch (then nobody can have inherited it before)."""

    work_id: str
    key: Key
    canonical_id: str
    minted_now: bool


def settle_batch(
    contenders: Sequence[Contender],
    read_inheritances: Callable[[list[str]], list[Inheritance]],
    policy: SuccessionPolicy,
) -> BatchSuccession:
    """Which works of a batch own their document, and with which rank. One registry read at
    most: the chains of every canonical ID a work did not just mint (a freshly minted ID that a
    work of this batch inherited is read through that work)."""
    wanted = sorted({c.canonical_id for c in contenders if not c.minted_now})
    chains = build_chains(read_inheritances(wanted), policy) if wanted else {}
    verdict = BatchSuccession()
    met: set[str] = set()
    # A lone work's rank depends on its source system only: computed once per system.
    lone_ranks: dict[str, int] = {}
    for contender in contenders:
        chain = chains.get(contender.canonical_id)
        if chain is None or contender.key not in chain.ranks:
            system = contender.key[1]
            lone = lone_ranks.get(system)
            if lone is None:
                lone = lone_ranks[system] = policy.lone_rank(contender.key)
            verdict.ranks[contender.work_id] = lone
            continue
        if contender.canonical_id not in met:
            met.add(contender.canonical_id)
            conflict = chain.conflict()
            if conflict is not None:
                verdict.conflicts.append(conflict)
        if contender.key == chain.holder:
            verdict.ranks[contender.work_id] = chain.ranks[contender.key]
        else:
            verdict.superseded[contender.work_id] = work_name(chain.holder)
    return verdict
