"""The churn guard: refuse to mint a flood of new public IDs for records that should inherit one.

During the migration, Folio and Axiell Collections records are expected to name their Sierra or
CALM predecessor. If a transformer bug drops `predecessorIdentifier`, every migrated record would
get a brand-new public ID: thousands of broken URLs that can never be taken back. The guard
watches, per source system, the share of a batch's records that would mint a NEW work ID without
a predecessor, and past a threshold stops that system's new minting for the rest of the run
(those works fail with stage `mint` and the reason) and raises an alert.

Concepts and items are watched too: a transformer change that re-keys them (a label-derived
concept whose label changed, items re-numbered) gives works that are already registered nodes
that would mint new IDs, while their old IDs fall out of use. Per ontology type
(`max_new_node_share`, default Concept and Item), the guard watches the share of the distinct
nodes of each source system, in the batch's already-registered works, that are not registered;
past the threshold it stops the works carrying them for the rest of the run. New works bring new
concepts and items as they should, and are not counted.

It stays off the hot path: one extra `lookup_ids` per batch at most, for just the works and
nodes that could be churn (expected-predecessor works without one; the works and the guarded
nodes when node types are guarded), to tell re-processing of records already registered (fine)
from genuinely new ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.settings import env_flag, env_int, environment
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.works.documents import WORK_ONTOLOGY_TYPE, ExtractedWork

# Systems that replace Sierra and CALM: their records should arrive with predecessors.
DEFAULT_MAX_NEW_SHARE: Mapping[str, float] = {"folio-instance": 0.2, "axiell-collections-id": 0.2}
DEFAULT_MIN_NEW_WORKS = 20
# Ontology types whose nodes, in works already registered, should be registered already.
DEFAULT_MAX_NEW_NODE_SHARE: Mapping[str, float] = {"Concept": 0.2, "Item": 0.2}
# Works, and guarded nodes of theirs, looked up per batch to decide whether to look at all.
WORK_SAMPLE = 50
NODE_SAMPLE = 150
_EXAMPLES = 5

T = TypeVar("T")
Lookup = Callable[[Iterable[SourceIdentifier]], Mapping[SourceIdentifier, str]]


class DeclaredWork(Protocol):
    """What the guard reads of a work to judge works (an `ExtractedWork`, or only what it
    declares)."""

    @property
    def work_id(self) -> str: ...

    @property
    def source(self) -> SourceIdentifier: ...

    @property
    def predecessor(self) -> SourceIdentifier | None: ...


def parse_max_new_share(text: str, *, key: str = "source-system") -> dict[str, float]:
    """`folio-instance=0.2,axiell-collections-id=0.1` (as in `IDMINTER_CHURN_GUARD`), or with
    `key="ontology-type"` `Concept=0.2,Item=0.1` (`IDMINTER_CHURN_GUARD_NODES`)."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        system, separator, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not separator or not system.strip() or not 0 <= share <= 1:
            raise InvalidInputError(
                f"churn guard setting {part!r}: expected '{key}=share' with a share between 0 and 1"
            )
        shares[system.strip()] = share
    return shares


@dataclass(frozen=True)
class ChurnGuardPolicy:
    """Per source system, the largest share of a batch's records allowed to mint a new work ID
    without a predecessor; per ontology type, the largest share of the nodes of one source
    system, in already-registered works, allowed to mint a new ID. A trip also needs at least
    `min_new_works` such records (or nodes)."""

    max_new_share: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_NEW_SHARE))
    min_new_works: int = DEFAULT_MIN_NEW_WORKS
    enabled: bool = True
    max_new_node_share: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_MAX_NEW_NODE_SHARE)
    )

    def __post_init__(self) -> None:
        for system, share in {**self.max_new_share, **self.max_new_node_share}.items():
            if not 0 <= share <= 1:
                raise InvalidInputError(
                    f"churn guard share for {system!r} must be in [0, 1]: {share}"
                )
        if self.min_new_works < 1:
            raise InvalidInputError(f"min_new_works must be at least 1, got {self.min_new_works}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ChurnGuardPolicy:
        env = environment(environ)
        text = env.get("IDMINTER_CHURN_GUARD")
        shares = dict(DEFAULT_MAX_NEW_SHARE) if text is None else parse_max_new_share(text)
        node_text = env.get("IDMINTER_CHURN_GUARD_NODES")
        node_shares = (
            dict(DEFAULT_MAX_NEW_NODE_SHARE)
            if node_text is None
            else parse_max_new_share(node_text, key="ontology-type")
        )
        return cls(
            max_new_node_share=node_shares,
            max_new_share=shares,
            min_new_works=env_int(
                env, "IDMINTER_CHURN_GUARD_MIN_NEW_WORKS", DEFAULT_MIN_NEW_WORKS, minimum=1
            ),
            enabled=env_flag("IDMINTER_CHURN_GUARD_ENABLED", env, default=True),
        )


@dataclass(frozen=True)
class ChurnTrip:
    source_system: str
    records_in_batch: int
    new_without_predecessor: int
    share: float
    max_share: float
    examples: tuple[str, ...]
    # Work for records without a predecessor; a node type (Concept, Item) for re-keyed nodes.
    ontology_type: str = WORK_ONTOLOGY_TYPE
    # What the shares were counted over: one batch, or a whole run judged at once.
    judged_over: str = "one batch"

    @property
    def subject(self) -> str:
        """What was stopped: a system's works, or one ontology type of a system's nodes."""
        if self.ontology_type == WORK_ONTOLOGY_TYPE:
            return self.source_system
        return f"{self.ontology_type} {self.source_system}"

    @property
    def reason(self) -> str:
        if self.ontology_type != WORK_ONTOLOGY_TYPE:
            return (
                f"churn guard: {self.new_without_predecessor} of {self.records_in_batch} "
                f"{self.subject} identifiers of already-minted works in one batch "
                f"({self.share:.0%}, limit {self.max_share:.0%}) would get a new public ID; "
                f"works carrying new {self.subject} identifiers are stopped for this run"
            )
        return (
            f"churn guard: {self.new_without_predecessor} of {self.records_in_batch} "
            f"{self.source_system} records in {self.judged_over} ({self.share:.0%}, limit "
            f"{self.max_share:.0%}) would get a new public ID without a predecessor; minting "
            f"of new {self.source_system} works is stopped for this run"
        )

    def alert(self, *, job_id: str | None = None) -> Alert:
        todo = (
            f"Check the {self.source_system} transformer: migrated records must carry "
            "state.predecessorIdentifier. If these really are new records, re-run with the "
            "churn guard relaxed for this system (IDMINTER_CHURN_GUARD or the run config)."
        )
        if self.ontology_type != WORK_ONTOLOGY_TYPE:
            todo = (
                f"Check what changed the {self.subject} identifiers of works already minted "
                "(a label-derived key after a label change, re-numbered items): run idminter "
                "impact over the source index to list them. If the change is intended, re-run "
                "with the guard relaxed for this type (IDMINTER_CHURN_GUARD_NODES)."
            )
        return Alert(
            title=f"Churn guard stopped new {self.subject} minting",
            what_happened=self.reason,
            what_to_do=todo,
            figures={
                "ontology_type": self.ontology_type,
                "source_system": self.source_system,
                "records_in_batch": self.records_in_batch,
                "new_without_predecessor": self.new_without_predecessor,
                "share": round(self.share, 4),
                "max_share": self.max_share,
                "examples": ", ".join(self.examples),
                "job_id": job_id,
            },
            severity=Severity.CRITICAL,
            runbook="Churn guard stopped new {system} minting",
        )


@dataclass
class ChurnGuard:
    """One per run: once a system trips, its new works stay stopped for the rest of the run.

    A bounded run (one Lambda invocation) has its works judged as a whole: `judge` over all of
    them first, then `screen` each batch, which stops the new works of the systems that tripped
    and trips no system on one batch's share of works alone (nodes are still judged per batch,
    from their sample)."""

    policy: ChurnGuardPolicy = field(default_factory=ChurnGuardPolicy)
    tripped: dict[str, ChurnTrip] = field(default_factory=dict)
    lookups: int = 0
    judged: bool = False

    def judge(self, works: Sequence[DeclaredWork], lookup: Lookup) -> list[ChurnTrip]:
        """Trip on the shares of the whole run's `works`; later screens only apply the verdict."""
        self.judged = True
        if not self.policy.enabled:
            return []
        guarded = [w for w in works if w.source.source_system in self.policy.max_new_share]
        suspicious = [w for w in guarded if w.predecessor is None]
        if not suspicious:
            return []
        self.lookups += 1
        registered = lookup([w.source for w in suspicious])
        _, trips = self._screen_works(guarded, suspicious, registered, judged_over="the run")
        return trips

    def screen(
        self, works: Sequence[ExtractedWork], lookup: Lookup
    ) -> tuple[dict[str, str], list[ChurnTrip]]:
        """Works to stop (work id -> reason) and what tripped in this batch."""
        if not self.policy.enabled:
            return {}, []
        shares = self.policy.max_new_share
        guarded = [w for w in works if w.source.source_system in shares]
        suspicious = [w for w in guarded if w.predecessor is None]
        # A spread sample of the works, and of their guarded nodes: enough to see a re-keying
        # (a large share) at a small fraction of the minter's own lookup.
        sampled_works = _spread(works, WORK_SAMPLE) if self.policy.max_new_node_share else []
        sampled_nodes = self._guarded_nodes(sampled_works)
        tripped_nodes = self._tripped_node_groups()
        if not suspicious and not sampled_nodes and not tripped_nodes:
            return {}, []
        self.lookups += 1
        sample = _spread(
            list(dict.fromkeys(s for f in sampled_nodes.values() for s in f)), NODE_SAMPLE
        )
        sampled_carriers = [w for w in sampled_works if w.work_id in sampled_nodes]
        wanted = [w.source for w in suspicious] + [w.source for w in sampled_carriers] + sample
        registered = lookup(dict.fromkeys(wanted))
        stopped, trips = self._screen_works(guarded, suspicious, registered, judged=self.judged)
        if sampled_nodes or tripped_nodes:
            node_stopped, node_trips = self._screen_nodes(
                works, sampled_carriers, sampled_nodes, sample, registered, lookup
            )
            for work_id, reason in node_stopped.items():
                stopped.setdefault(work_id, reason)
            trips += node_trips
        return stopped, trips

    def _screen_works(
        self,
        guarded: Sequence[DeclaredWork],
        suspicious: Sequence[DeclaredWork],
        registered: Mapping[SourceIdentifier, str],
        *,
        judged: bool = False,
        judged_over: str = "one batch",
    ) -> tuple[dict[str, str], list[ChurnTrip]]:
        """`judged`: the run was judged as a whole already, so no system trips here."""
        shares = self.policy.max_new_share
        new = [w for w in suspicious if w.source not in registered]
        totals = Counter(w.source.source_system for w in guarded)
        new_by_system: dict[str, list[DeclaredWork]] = {}
        for work in new:
            new_by_system.setdefault(work.source.source_system, []).append(work)

        stopped: dict[str, str] = {}
        trips: list[ChurnTrip] = []
        for system, system_new in new_by_system.items():
            share = len(system_new) / totals[system]
            if (
                system not in self.tripped
                and not judged
                and (len(system_new) >= self.policy.min_new_works and share > shares[system])
            ):
                trip = ChurnTrip(
                    system,
                    totals[system],
                    len(system_new),
                    share,
                    shares[system],
                    tuple(w.work_id for w in system_new[:_EXAMPLES]),
                    judged_over=judged_over,
                )
                self.tripped[system] = trip
                trips.append(trip)
            if system in self.tripped:
                reason = self.tripped[system].reason
                stopped.update((w.work_id, reason) for w in system_new)
        return stopped, trips

    def _guarded_nodes(self, works: Sequence[ExtractedWork]) -> dict[str, list[SourceIdentifier]]:
        """Per work id, its distinct nodes of a guarded ontology type that name no predecessor
        (a node that does inherits its predecessor's ID)."""
        types = self.policy.max_new_node_share
        if not types:
            return {}
        found: dict[str, list[SourceIdentifier]] = {}
        for work in works:
            inheriting = {d.source for d in work.node_predecessors}
            sources = [
                node.source
                for node in work.nodes
                if node.source.ontology_type in types
                and node.source != work.source
                and node.source not in inheriting
            ]
            if sources:
                found[work.work_id] = list(dict.fromkeys(sources))
        return found

    def _screen_nodes(  # noqa: PLR0917 (one batch's works, sample and lookups)
        self,
        works: Sequence[ExtractedWork],
        sampled_carriers: Sequence[ExtractedWork],
        sampled_nodes: Mapping[str, list[SourceIdentifier]],
        sample: Sequence[SourceIdentifier],
        registered: Mapping[SourceIdentifier, str],
        lookup: Lookup,
    ) -> tuple[dict[str, str], list[ChurnTrip]]:
        """Nodes of already-registered works that would mint new IDs, per type and system: the
        sample decides whether to look closer; only then are all the batch's works and that
        group's nodes looked up, counted and their works stopped."""
        sampled = set(sample)
        sampled_minted = {w.work_id for w in sampled_carriers if w.source in registered}
        in_sample = self._new_node_groups(sampled_nodes, sampled_minted, sampled, registered)
        suspect = [
            group
            for group, (total, new) in in_sample.items()
            if new and (new / total > self.policy.max_new_node_share[group[0]])
        ]
        suspect += [g for g in self._tripped_node_groups() if g not in suspect]
        if not suspect:
            return {}, []
        nodes = self._guarded_nodes(works)
        carriers = [w for w in works if w.work_id in nodes]
        in_groups = {
            source
            for work in carriers
            for source in nodes[work.work_id]
            if (source.ontology_type, source.source_system) in suspect
        }
        known = {w.source for w in sampled_carriers} | sampled
        remaining = [w.source for w in carriers if w.source not in known]
        remaining += sorted(in_groups - known, key=str)
        if remaining:
            registered = {**registered, **lookup(dict.fromkeys(remaining))}
        minted_works = {w.work_id for w in carriers if w.source in registered}
        wanted = {
            source for work_id in minted_works for source in nodes[work_id] if source in in_groups
        }
        return self._trip_nodes(nodes, minted_works, set(suspect), wanted, registered)

    def _tripped_node_groups(self) -> list[tuple[str, str]]:
        return [
            (trip.ontology_type, trip.source_system)
            for trip in self.tripped.values()
            if trip.ontology_type != WORK_ONTOLOGY_TYPE
        ]

    @staticmethod
    def _new_node_groups(
        nodes: Mapping[str, list[SourceIdentifier]],
        minted_works: set[str],
        sampled: set[SourceIdentifier],
        registered: Mapping[SourceIdentifier, str],
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """Per type and system, (nodes sampled, of which not registered), in minted works."""
        seen: dict[tuple[str, str], set[SourceIdentifier]] = {}
        for work_id in minted_works:
            for source in nodes.get(work_id, ()):
                if source in sampled:
                    seen.setdefault((source.ontology_type, source.source_system), set()).add(source)
        return {
            group: (len(sources), sum(1 for s in sources if s not in registered))
            for group, sources in seen.items()
        }

    def _trip_nodes(
        self,
        nodes: Mapping[str, list[SourceIdentifier]],
        minted_works: set[str],
        groups: set[tuple[str, str]],
        looked_up: set[SourceIdentifier],
        registered: Mapping[SourceIdentifier, str],
    ) -> tuple[dict[str, str], list[ChurnTrip]]:
        shares = self.policy.max_new_node_share
        totals: dict[tuple[str, str], int] = Counter(
            (s.ontology_type, s.source_system) for s in looked_up
        )
        new: dict[tuple[str, str], list[SourceIdentifier]] = {}
        for source in sorted(looked_up, key=str):
            if source not in registered:
                new.setdefault((source.ontology_type, source.source_system), []).append(source)
        trips: list[ChurnTrip] = []
        stopped: dict[str, str] = {}
        for group in sorted(groups):
            ontology_type, system = group
            group_new = set(new.get(group, ()))
            key = f"{ontology_type} {system}"
            share = len(group_new) / totals[group] if totals[group] else 0.0
            if key not in self.tripped and (
                len(group_new) >= self.policy.min_new_works and share > shares[ontology_type]
            ):
                trip = ChurnTrip(
                    system,
                    totals[group],
                    len(group_new),
                    share,
                    shares[ontology_type],
                    tuple(str(source) for source in new[group][:_EXAMPLES]),
                    ontology_type=ontology_type,
                )
                self.tripped[key] = trip
                trips.append(trip)
            if key in self.tripped and group_new:
                reason = self.tripped[key].reason
                stopped.update(
                    (work_id, reason)
                    for work_id in minted_works
                    if any(source in group_new for source in nodes.get(work_id, ()))
                )
        return stopped, trips


def _spread(items: Sequence[T], most: int) -> list[T]:
    """At most `most` of `items`, spread evenly over them."""
    if not items:
        return []
    return list(items[:: -(-len(items) // most)])
