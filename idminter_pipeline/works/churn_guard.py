"""The churn guard: refuse to mint a flood of new public IDs for records that should inherit one.

During the migration, Folio and Axiell Collections records are expected to name their Sierra or
CALM predecessor. If a transformer bug drops `predecessorIdentifier`, every migrated record would
get a brand-new public ID: thousands of broken URLs that can never be taken back. The guard
watches, per source system, the share of a batch's records that would mint a NEW work ID without
a predecessor, and past a threshold stops that system's new minting for the rest of the run
(those works fail with stage `mint` and the reason) and raises an alert.

It stays off the hot path: only a batch that holds suspicious works (expected-predecessor system,
no predecessor) costs one extra `lookup_ids`, for just those works, to tell re-processing of
records already registered (fine) from genuinely new ones.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.source_identifiers import SourceIdentifier

# Systems that replace Sierra and CALM: their records should arrive with predecessors.
DEFAULT_MAX_NEW_SHARE: Mapping[str, float] = {"folio-instance": 0.2, "axiell-collections-id": 0.2}
DEFAULT_MIN_NEW_WORKS = 20
_EXAMPLES = 5

Lookup = Callable[[Iterable[SourceIdentifier]], Mapping[SourceIdentifier, str]]


class DeclaredWork(Protocol):
    """What the guard reads of a work (an `ExtractedWork`, or only what it declares)."""

    @property
    def work_id(self) -> str: ...

    @property
    def source(self) -> SourceIdentifier: ...

    @property
    def predecessor(self) -> SourceIdentifier | None: ...


def parse_max_new_share(text: str) -> dict[str, float]:
    """`folio-instance=0.2,axiell-collections-id=0.1` (as in `IDMINTER_CHURN_GUARD`)."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        system, separator, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not separator or not system.strip() or not 0 <= share <= 1:
            raise InvalidInputError(
                f"churn guard setting {part!r}: expected 'source-system=share' with a share "
                "between 0 and 1"
            )
        shares[system.strip()] = share
    return shares


@dataclass(frozen=True)
class ChurnGuardPolicy:
    """Per source system, the largest share of a batch's records allowed to mint a new work ID
    without a predecessor; a trip also needs at least `min_new_works` such records."""

    max_new_share: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MAX_NEW_SHARE))
    min_new_works: int = DEFAULT_MIN_NEW_WORKS
    enabled: bool = True

    def __post_init__(self) -> None:
        for system, share in self.max_new_share.items():
            if not 0 <= share <= 1:
                raise InvalidInputError(
                    f"churn guard share for {system!r} must be in [0, 1]: {share}"
                )
        if self.min_new_works < 1:
            raise InvalidInputError(f"min_new_works must be at least 1, got {self.min_new_works}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ChurnGuardPolicy:
        env = os.environ if environ is None else environ
        text = env.get("IDMINTER_CHURN_GUARD")
        shares = dict(DEFAULT_MAX_NEW_SHARE) if text is None else parse_max_new_share(text)
        minimum = env.get("IDMINTER_CHURN_GUARD_MIN_NEW_WORKS")
        return cls(
            max_new_share=shares,
            min_new_works=int(minimum) if minimum else DEFAULT_MIN_NEW_WORKS,
            enabled=env.get("IDMINTER_CHURN_GUARD_ENABLED", "true").lower() not in ("0", "false"),
        )


@dataclass(frozen=True)
class ChurnTrip:
    source_system: str
    records_in_batch: int
    new_without_predecessor: int
    share: float
    max_share: float
    examples: tuple[str, ...]
    # What the shares were counted over: one batch, or a whole run judged at once.
    judged_over: str = "one batch"

    @property
    def reason(self) -> str:
        return (
            f"churn guard: {self.new_without_predecessor} of {self.records_in_batch} "
            f"{self.source_system} records in {self.judged_over} ({self.share:.0%}, limit "
            f"{self.max_share:.0%}) would get a new public ID without a predecessor; minting "
            f"of new {self.source_system} works is stopped for this run"
        )

    def alert(self, *, job_id: str | None = None) -> Alert:
        return Alert(
            title=f"Churn guard stopped new {self.source_system} minting",
            what_happened=self.reason,
            what_to_do=(
                f"Check the {self.source_system} transformer: migrated records must carry "
                "state.predecessorIdentifier. If these really are new records, re-run with the "
                "churn guard relaxed for this system (IDMINTER_CHURN_GUARD or the run config)."
            ),
            figures={
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

    A bounded run (one Lambda invocation) is judged as a whole: `judge` over all its works first,
    then `screen` each batch, which stops the new works of the systems that tripped and trips no
    system on one batch's shares alone."""

    policy: ChurnGuardPolicy = field(default_factory=ChurnGuardPolicy)
    tripped: dict[str, ChurnTrip] = field(default_factory=dict)
    lookups: int = 0
    judged: bool = False

    def judge(self, works: Sequence[DeclaredWork], lookup: Lookup) -> list[ChurnTrip]:
        """Trip on the shares of the whole run's `works`; later screens only apply the verdict."""
        _, trips = self.screen(works, lookup, judged_over="the run")
        self.judged = True
        return trips

    def screen(
        self, works: Sequence[DeclaredWork], lookup: Lookup, *, judged_over: str = "one batch"
    ) -> tuple[dict[str, str], list[ChurnTrip]]:
        """Works to stop (work id -> reason) and the systems that tripped in this batch."""
        if not self.policy.enabled:
            return {}, []
        shares = self.policy.max_new_share
        guarded = [w for w in works if w.source.source_system in shares]
        suspicious = [w for w in guarded if w.predecessor is None]
        if not suspicious:
            return {}, []
        self.lookups += 1
        registered = lookup([w.source for w in suspicious])
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
                and not self.judged
                and (len(system_new) >= self.policy.min_new_works and share > shares[system])
            ):
                trip = ChurnTrip(
                    system,
                    totals[system],
                    len(system_new),
                    share,
                    shares[system],
                    tuple(w.work_id for w in system_new[:_EXAMPLES]),
                    judged_over,
                )
                self.tripped[system] = trip
                trips.append(trip)
            if system in self.tripped:
                reason = self.tripped[system].reason
                stopped.update((w.work_id, reason) for w in system_new)
        return stopped, trips
