"""The identity impact of a candidate, before it runs: which public IDs it would mint, inherit,
keep, and which published IDs no document would carry any more.

A candidate is a source index (or store) about to replace the one the minter reads: a reindex, a
transformer change. It is run through the works pipeline itself with nothing written: the
registry is read through `ReadOnlyMinter` (lookups only, a placeholder for each ID it would mint,
no free ID claimed), and where the pipeline would write an identified document it is compared
instead with the document published today under the same canonical ID (the identified side of
the works store). Per ontology type and source system, each distinct public ID is counted once:

- `new`: a source the registry does not hold and that names no predecessor: a brand-new ID;
- `inherited`: a new source that takes over its predecessor's ID;
- `kept`: a registered source, keeping its ID;
- `uncarried`: an ID a published document of the scope carries that no candidate document of
  the scope would carry any more (a concept whose label-derived key changed: its old ID is
  orphaned, and the new key mints a new one).

Each figure lists the works and nodes behind it (the first 100). `ImpactThresholds` say how many
`new` and `uncarried` IDs per type and system are acceptable; above them the impact is a breach
(the CLI exits 1, the Dagster check blocks promotion).

Memory: the scope's carried and published IDs are held as sets (about 100 bytes per distinct
ID), which bounds a full-index impact by the number of distinct IDs, not of works.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.errors import InvalidInputError, InvalidSettingError, MalformedWorkError
from idminter_pipeline.core.reports import field_values
from idminter_pipeline.core.settings import ElasticsearchSettings, env_int
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import ConnectionFactory
from idminter_pipeline.registry.minting import Inheritance, MintOutcome, MintRequest, MintResult
from idminter_pipeline.registry.minting.read_only import ReadOnlyMinter
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy
from idminter_pipeline.works.documents import IdentifiedWork, extract_work
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, WorksPipeline
from idminter_pipeline.works.run_summary import WorkFailure
from idminter_pipeline.works.shadow.compare import would_mint_placeholder
from idminter_pipeline.works.stores.base import (
    DEFAULT_PAGE_SIZE,
    ReadThroughStore,
    StoredHolder,
    WorkScope,
    WorksStore,
    WriteFailure,
)

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

LISTED = 100
IMPACT_SOURCE = "idminter-pipeline/identity-impact"
MAX_UNCARRIED_ENV = "IDMINTER_IMPACT_MAX_UNCARRIED"
MAX_NEW_ENV = "IDMINTER_IMPACT_MAX_NEW"
DEFAULT_MAX_UNCARRIED = 100


class Fate(StrEnum):
    """What the candidate would do to one public ID."""

    NEW = "new"
    INHERITED = "inherited"
    KEPT = "kept"
    UNCARRIED = "uncarried"


_FATES = {
    MintOutcome.MINTED: Fate.NEW,
    MintOutcome.INHERITED: Fate.INHERITED,
    MintOutcome.EXISTING: Fate.KEPT,
}
Group = tuple[str, str]  # (ontology type, source system)


@dataclass(frozen=True)
class ImpactThresholds:
    """Per ontology type and source system, the most `uncarried` and `new` IDs accepted; None
    is no limit."""

    max_uncarried: int | None = DEFAULT_MAX_UNCARRIED
    max_new: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ImpactThresholds:
        env = os.environ if environ is None else environ
        return cls(
            max_uncarried=_limit(env, MAX_UNCARRIED_ENV, DEFAULT_MAX_UNCARRIED),
            max_new=_limit(env, MAX_NEW_ENV, None),
        )


def _limit(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A whole number of at least 0, or `none` for no limit (unset: `default`)."""
    text = env.get(name, "")
    if text.strip().lower() == "none":
        return None
    if not text.strip():
        return default
    try:
        return env_int(env, name, 0, minimum=0)
    except InvalidSettingError as error:
        raise InvalidSettingError(
            name, text, "expected a whole number of at least 0, or 'none' for no limit"
        ) from error


@dataclass(frozen=True, slots=True)
class ImpactedId:
    """One public ID behind a figure: the source it belongs to and a work that carries it."""

    source: str
    canonical_id: str | None
    work_id: str

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "canonical_id": self.canonical_id, "work": self.work_id}


@dataclass
class ImpactReport:
    scope: str
    candidate: str
    published: str
    thresholds: ImpactThresholds
    counts: dict[Group, Counter[Fate]] = field(default_factory=dict)
    listed: dict[tuple[str, str, Fate], list[ImpactedId]] = field(default_factory=dict)
    works_read: int = 0
    works_failed: int = 0
    failures: list[WorkFailure] = field(default_factory=list)

    def add(self, group: Group, fate: Fate, entry: ImpactedId) -> None:
        self.counts.setdefault(group, Counter())[fate] += 1
        listed = self.listed.setdefault((*group, fate), [])
        if len(listed) < LISTED:
            listed.append(entry)

    def total(self, fate: Fate) -> int:
        return sum(counter[fate] for counter in self.counts.values())

    @property
    def breaches(self) -> list[str]:
        """Each figure over its threshold, in words."""
        found = []
        limits = ((Fate.UNCARRIED, self.thresholds.max_uncarried, MAX_UNCARRIED_ENV),)
        limits += ((Fate.NEW, self.thresholds.max_new, MAX_NEW_ENV),)
        for (ontology_type, system), counter in sorted(self.counts.items()):
            for fate, limit, name in limits:
                if limit is not None and counter[fate] > limit:
                    found.append(
                        f"{counter[fate]:,} {ontology_type} {system} ID(s) {_WORDS[fate]} "
                        f"(limit {limit:,}, {name})"
                    )
        return found

    def frame(self) -> pd.DataFrame:
        """One row per ontology type and source system, one column per fate."""
        rows = [
            {"ontology_type": t, "source_system": s, **{str(f): c[f] for f in Fate}}
            for (t, s), c in sorted(self.counts.items())
        ]
        return pd.DataFrame(rows, columns=["ontology_type", "source_system", *map(str, Fate)])

    def describe(self) -> str:
        totals = ", ".join(f"{fate} {self.total(fate):,}" for fate in Fate)
        breaches = self.breaches
        if not breaches:
            return f"{self.candidate} over {self.scope}: within thresholds ({totals})"
        return f"{self.candidate} over {self.scope}: " + "; ".join(breaches) + f" ({totals})"

    def as_dict(self) -> dict[str, Any]:
        return {
            **field_values(self, leave_out={"counts", "listed"}),
            "totals": {str(fate): self.total(fate) for fate in Fate},
            "by_type_and_system": [
                {
                    "ontology_type": ontology_type,
                    "source_system": system,
                    **{str(fate): counter[fate] for fate in Fate},
                    "listed": {
                        str(fate): [e.as_dict() for e in self.listed.get((*group, fate), [])]
                        for fate in Fate
                        if counter[fate]
                    },
                }
                for group, counter in sorted(self.counts.items())
                for ontology_type, system in [group]
            ],
            "breaches": self.breaches,
        }


_WORDS = {
    Fate.NEW: "would be minted anew",
    Fate.UNCARRIED: "published would no longer be carried by any document",
}


def _group(source: SourceIdentifier) -> Group:
    return (source.ontology_type, source.source_system)


class _RecordingMinter:
    """`ReadOnlyMinter` for the pipeline, keeping each batch's planned results; no chains (a
    shadow run writes nothing, so succession has nothing to decide)."""

    def __init__(self, shadow: ReadOnlyMinter) -> None:
        self._shadow = shadow
        self.results: dict[SourceIdentifier, MintResult] = {}

    def lookup_ids(self, sources: Iterable[SourceIdentifier]) -> dict[SourceIdentifier, str]:
        return self._shadow.lookup_ids(sources)

    def mint_ids(
        self, requests: Iterable[MintRequest], *, job_id: str | None = None
    ) -> dict[SourceIdentifier, MintResult]:
        self.results = self._shadow.mint_ids(requests, job_id=job_id)
        return self.results

    def inheritances(self, canonical_ids: Iterable[str]) -> list[Inheritance]:
        return self._shadow.inheritances(canonical_ids)


class _AssessingStore(ReadThroughStore):
    """Reads the candidate; where the pipeline would write, counts each ID's fate and compares
    the document with the one published under the same canonical ID. Writes nothing."""

    refusal = "an impact assessment writes nothing"

    def __init__(
        self,
        candidate: WorksStore,
        published: WorksStore,
        minter: _RecordingMinter,
        report: ImpactReport,
    ) -> None:
        super().__init__(candidate)
        self._published = published
        self._minter = minter
        self._report = report
        self.carried: set[str] = set()
        self.counted_sources: set[SourceIdentifier] = set()
        self.published_ids: dict[str, ImpactedId] = {}

    def write_identified(self, works: Sequence[IdentifiedWork]) -> list[WriteFailure]:
        results = self._minter.results
        for work in works:
            extracted = extract_work(work.document, document_id=work.source_id)
            for source in extracted.identifiers:
                result = results.get(source)
                if result is None:
                    continue
                self._count(source, result, work.source_id)
        # In the order the works were read, so the IDs listed first are the first works' ones.
        real_ids = list(
            dict.fromkeys(
                result.canonical_id
                for work in works
                if (result := results.get(_work_source(work))) is not None
                and result.outcome is not MintOutcome.MINTED
            )
        )
        published = self._published.get_identified(real_ids) if real_ids else {}
        for canonical_id in real_ids:
            if (document := published.get(canonical_id)) is not None:
                self._remember_published(document)
        return []

    def _count(self, source: SourceIdentifier, result: MintResult, work_id: str) -> None:
        fate = _FATES[result.outcome]
        entry = ImpactedId(str(source), result.canonical_id, work_id)
        if fate is Fate.KEPT:
            # Counted once per ID, however many works or batches carry it.
            if result.canonical_id not in self.carried:
                self.carried.add(result.canonical_id)
                self._report.add(_group(source), fate, entry)
            return
        if fate is Fate.INHERITED:
            self.carried.add(result.canonical_id)
        if source not in self.counted_sources:
            self.counted_sources.add(source)
            if fate is Fate.NEW:
                entry = ImpactedId(str(source), None, work_id)
            self._report.add(_group(source), fate, entry)

    def _remember_published(self, document: Mapping[str, Any]) -> None:
        try:
            extracted = extract_work(document, document_id="published")
        except MalformedWorkError:
            return  # not a document the minter wrote; nothing of it is ours to count
        for node, source in extracted.nodes:  # the work's own `state` among them
            canonical_id = node.get("canonicalId")
            if isinstance(canonical_id, str) and canonical_id not in self.published_ids:
                self.published_ids[canonical_id] = ImpactedId(
                    str(source), canonical_id, extracted.work_id
                )

    def finish(self) -> None:
        """The published IDs no candidate document carries."""
        for canonical_id, entry in self.published_ids.items():
            if canonical_id not in self.carried:
                source = SourceIdentifier.parse(entry.source)
                self._report.add(_group(source), Fate.UNCARRIED, entry)

    def get_identified(self, canonical_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {}

    def identified_holders(self, canonical_ids: Sequence[str]) -> dict[str, StoredHolder]:
        return {}

    def scan_identified(
        self, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(())

    def count_identified(self) -> int:
        return 0


def _work_source(work: IdentifiedWork) -> SourceIdentifier:
    return SourceIdentifier.parse(work.source_id)


def assess_impact(
    candidate: WorksStore,
    published: WorksStore,
    connect: ConnectionFactory,
    scope: WorkScope,
    *,
    thresholds: ImpactThresholds | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImpactReport:
    """The impact of minting `scope` from `candidate`, against what `published` holds today.
    Nothing is written to the registry or to either store."""
    published.refresh()
    report = ImpactReport(
        scope=scope.describe(),
        candidate=candidate.describe(),
        published=published.describe(),
        thresholds=thresholds or ImpactThresholds(),
    )
    with ReadOnlyMinter(connect, placeholder=would_mint_placeholder) as shadow:
        minter = _RecordingMinter(shadow)
        store = _AssessingStore(candidate, published, minter, report)
        summary = WorksPipeline(
            store,
            minter,
            batch_size=batch_size,
            churn_guard=ChurnGuardPolicy(enabled=False),
            record_processed=False,
        ).run(scope)
    store.finish()
    report.works_read = summary.works_read
    report.works_failed = summary.failed
    report.failures = summary.failures[:LISTED]
    return report


def impact_alert(report: ImpactReport, *, run_id: str | None = None) -> Alert:
    """The candidate's impact is over its thresholds: promoting it would change public IDs."""
    breaches = report.breaches
    return Alert(
        title=f"Identity impact over threshold: {len(breaches)} finding(s)",
        runbook="Identity impact over threshold: {count} finding(s)",
        what_happened=f"{report.describe()}.",
        what_to_do=(
            "Do not promote the candidate. Read the IDs listed on the candidate_impact check "
            "(or `idminter impact`): which transformer change re-keyed them? Fix it and build "
            "the candidate again, or, if the change is intended, raise the threshold for this "
            "assessment only."
        ),
        figures={
            "new": report.total(Fate.NEW),
            "inherited": report.total(Fate.INHERITED),
            "kept": report.total(Fate.KEPT),
            "uncarried": report.total(Fate.UNCARRIED),
            "first_breach": breaches[0] if breaches else None,
        },
        severity=Severity.CRITICAL,
        source=IMPACT_SOURCE,
        cause=breaches[0] if breaches else None,
        run_id=run_id,
    )


def sqlite_candidate(path: str | Path, *, named_by: str) -> WorksStore:
    """A candidate held in a SQLite works store, which must exist (`named_by` says where the
    path came from)."""
    from idminter_pipeline.works.stores.sqlite import SqliteWorksStore  # noqa: PLC0415

    if not Path(path).is_file():
        raise InvalidInputError(f"candidate store {path}: no such file ({named_by})")
    return SqliteWorksStore(path)


def elasticsearch_candidate(
    client: Elasticsearch, index: str, published: ElasticsearchSettings
) -> WorksStore:
    """A candidate source index on the cluster of the published works: read from `index`,
    compared with the identified index published today."""
    from idminter_pipeline.works.stores.elasticsearch import (  # noqa: PLC0415
        ElasticsearchWorksStore,
    )

    return ElasticsearchWorksStore(
        client,
        ElasticsearchSettings(
            source_index_prefix=index, target_index_prefix=published.target_index
        ),
    )
