"""Put right identified documents written before succession ranks existed.

Before `works.succession`, whichever work of a chain was written last owned the chain's
identified document: a late update of a predecessor replaced its successor's. This finds every
canonical ID whose stored document is not its chain's holder (the newest record, by the same
rule the pipeline applies) and, with `apply`, rewrites it by running the pipeline over the
holders' works: they are minted (nothing new), annotated and written with their rank, which
replaces the wrong document, and announced downstream like any written work.

A document that is the holder's but carries no rank (written before ranks) is listed too and
rewritten with its rank, so that a stale write racing with it later cannot replace it; so is a
chain whose holder has no document yet.

Ranks only go up in a store, so a document stored with a rank above its holder's (a conflict
resolved by re-pointing the work that held it, or a changed tie rule) is deleted first, then
rewritten. In Elasticsearch the deleted version outlives the document for `index.gc_deletes`
(60 s by default): such a rewrite fails until then, and running `--apply` again a minute later
completes it.

Chains are read in canonical-ID order, a page at a time (`Minter.chained_ids`), so a registry
of millions of chains is walked in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from idminter_pipeline.core.reports import field_values
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.reruns import RerunTotals
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.stores import IdsScope, WorksStore
from idminter_pipeline.works.succession import (
    MAX_DEPTH,
    SuccessionPolicy,
    build_chains,
    work_name,
)

PAGE_SIZE = 500
# A repair report lists this many documents in full; the counts are always complete.
MAX_LISTED = 1_000


@dataclass(frozen=True)
class StaleDocument:
    """`canonical_id`'s document is `stored`'s (None: there is none) with rank `stored_rank`,
    but belongs to `holder`, with rank `holder_rank`."""

    canonical_id: str
    holder: str
    holder_rank: int
    stored: str | None
    stored_rank: int

    @property
    def outranked(self) -> bool:
        """The stored rank is above the holder's: the document must be deleted first."""
        return self.stored is not None and self.stored_rank > self.holder_rank

    @property
    def reason(self) -> str:
        if self.stored is None:
            return "no document"
        if self.outranked:
            return (
                "stored with a higher rank than its holder's (conflict resolved, tie rule changed)"
            )
        if self.stored != self.holder:
            return "held by an older record of the chain"
        return "the holder's, written without a rank"

    def as_dict(self) -> dict[str, Any]:
        return {
            **field_values(
                self,
                renamed={"canonical_id": "canonicalId"},
                leave_out={"holder_rank", "stored_rank"},
            ),
            "reason": self.reason,
        }


# The report's names for the counts, the list of stale documents and the rewrites.
_REPORTED_AS = {
    "wrong_holder": "documents_of_an_older_record",
    "unranked": "documents_without_rank",
    "missing": "documents_missing",
    "outranked": "documents_outranked",
    "listed": "documents",
    "works_written": "rewritten",
    "works_superseded": "superseded",
    "works_failed": "failed",
}


@dataclass
class RepairReport(RerunTotals):
    """The stale documents found and, with `applied`, what rewriting their holders' works did
    (the rerun totals)."""

    applied: bool
    chains_checked: int = 0
    wrong_holder: int = 0
    unranked: int = 0
    missing: int = 0
    outranked: int = 0
    listed: list[StaleDocument] = field(default_factory=list)
    # Chains deeper than a succession rank can order (canonical ID -> depth of the deepest
    # record): left as they are and listed, for a person to shorten.
    too_deep: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **field_values(self, renamed=_REPORTED_AS, leave_out={"works_minted", "too_deep"}),
            "chains_too_deep": [
                {
                    "canonicalId": canonical_id,
                    "deepest": deepest,
                    "reason": f"deeper than {MAX_DEPTH}, the deepest record a succession rank "
                    "orders (the minter refuses such a successor): shorten the chain by hand",
                }
                for canonical_id, deepest in self.too_deep.items()
            ],
        }


def stale_documents(
    store: WorksStore,
    minter: Minter,
    policy: SuccessionPolicy,
    *,
    page_size: int = PAGE_SIZE,
    report: RepairReport | None = None,
) -> Iterator[StaleDocument]:
    """Every chain's document that is not exactly its holder's with its rank."""
    after = ""
    while ids := minter.chained_ids(after=after, limit=page_size):
        after = ids[-1]
        chains = build_chains(minter.inheritances(ids), policy)
        held = store.identified_holders(list(chains))
        for canonical_id, chain in chains.items():
            if report is not None:
                report.chains_checked += 1
            if chain.too_deep:
                if report is not None and len(report.too_deep) < MAX_LISTED:
                    report.too_deep[canonical_id] = chain.deepest
                continue  # no rank orders it: left to a person (listed)
            holder, rank = work_name(chain.holder), chain.ranks[chain.holder]
            stored = held.get(canonical_id)
            if stored is None:
                yield StaleDocument(canonical_id, holder, rank, None, 0)
            elif stored.source_id != holder or stored.rank != rank:
                yield StaleDocument(canonical_id, holder, rank, stored.source_id, stored.rank)


def repair_succession(
    store: WorksStore,
    minter: Minter,
    policy: SuccessionPolicy,
    *,
    apply: bool,
    run: Callable[[IdsScope], RunSummary] | None = None,
    page_size: int = PAGE_SIZE,
) -> RepairReport:
    """Find (and with `apply`, rewrite through `run`, one pipeline run per page of holders)
    every stale chain document."""
    report = RepairReport(applied=apply)
    stale = stale_documents(store, minter, policy, page_size=page_size, report=report)
    while page := list(islice(stale, page_size)):
        for document in page:
            if document.stored is None:
                report.missing += 1
            elif document.outranked:
                report.outranked += 1
            elif document.stored != document.holder:
                report.wrong_holder += 1
            else:
                report.unranked += 1
            if len(report.listed) < MAX_LISTED:
                report.listed.append(document)
        if apply and run is not None:
            store.delete_identified([d.canonical_id for d in page if d.outranked])
            summary = run(IdsScope(tuple(dict.fromkeys(d.holder for d in page))))
            report.add_run(summary, listed=MAX_LISTED)
    return report
