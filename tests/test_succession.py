"""Succession: the newest record of a chain owns the identified document, in any order, in one
batch or many, and under real concurrent processes (SQLite store, real registry)."""

import itertools
import json
import multiprocessing
import sqlite3

import pytest
from works_helpers import fill_pool, results_of, work

from idminter_pipeline.core.errors import ChainTooDeepError, InvalidInputError
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Inheritance, Minter, MintRequest
from idminter_pipeline.works.documents import IdentifiedWork, SourceWork, extract_work
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.repair import repair_succession
from idminter_pipeline.works.run_summary import SupersededWork
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore
from idminter_pipeline.works.succession import (
    DEFAULT_PRECEDENCE,
    RANKED,
    SuccessionPolicy,
    build_chains,
)

SIERRA, FOLIO, AXIELL, CALM = (
    "sierra-system-number",
    "folio-instance",
    "axiell-collections-id",
    "calm-record-id",
)


@pytest.fixture
def pool(connect_registry):
    fill_pool(connect_registry, 500)


def _holder(store, minter, work_id: str) -> str:
    """Whose document the identified index holds under `work_id`'s canonical ID."""
    [canonical_id] = minter.lookup_ids([SourceIdentifier.parse(work_id)]).values()
    document = store.get_identified([canonical_id])[canonical_id]
    identifier = document["state"]["sourceIdentifier"]
    return f"Work[{identifier['identifierType']['id']}/{identifier['value']}]"


def _run(store, minter, *ids, **kwargs):
    summary = WorksPipeline(store, minter, **kwargs).run(IdsScope(ids))
    assert summary.failed == 0, summary.failures
    return summary


# -- pure chain logic ---------------------------------------------------------------------------


def _key(system, value):
    return ("Work", system, value)


def test_depth_orders_a_chain_and_the_newest_record_holds_it():
    a, b, c = _key(SIERRA, "b1"), _key(FOLIO, "f1"), _key(AXIELL, "x1")
    edges = [Inheritance("abcd2345", 7, c, b), Inheritance("abcd2345", 3, b, a)]
    [chain] = build_chains(edges, SuccessionPolicy()).values()
    assert chain.holder == c and chain.conflict() is None
    assert chain.ranks[a] < chain.ranks[b] < chain.ranks[c]
    assert all(rank >= RANKED for rank in chain.ranks.values())
    # Depth dominates precedence: a Sierra record inheriting from Axiell still outranks it.
    edges = [Inheritance("abcd2345", 3, a, c)]
    [chain] = build_chains(edges, SuccessionPolicy()).values()
    assert chain.holder == a


def test_two_live_successors_are_a_conflict_decided_by_precedence_then_inheritance_order():
    a, f, x = _key(SIERRA, "b1"), _key(FOLIO, "f1"), _key(AXIELL, "x1")
    edges = [Inheritance("abcd2345", 3, f, a), Inheritance("abcd2345", 4, x, a)]
    [chain] = build_chains(edges, SuccessionPolicy()).values()
    conflict = chain.conflict()
    assert conflict is not None and chain.holder == x
    assert (conflict.holder, conflict.others) == (
        "Work[axiell-collections-id/x1]",
        ("Work[folio-instance/f1]",),
    )
    [chain] = build_chains(edges, SuccessionPolicy((FOLIO, AXIELL))).values()
    assert chain.holder == f
    # One system: the earlier inheritance keeps it.
    f2 = _key(FOLIO, "f2")
    edges = [Inheritance("abcd2345", 9, f2, a), Inheritance("abcd2345", 5, f, a)]
    [chain] = build_chains(edges, SuccessionPolicy()).values()
    assert chain.holder == f and chain.conflict().others == ("Work[folio-instance/f2]",)


def test_the_precedence_is_configuration_and_bad_values_are_refused():
    assert SuccessionPolicy.from_env({}).precedence == DEFAULT_PRECEDENCE
    policy = SuccessionPolicy.from_env({"IDMINTER_SUCCESSION_PRECEDENCE": "folio-instance, x"})
    assert policy.precedence == ("folio-instance", "x")
    for bad, phrase in (("a,,b", "'' is not a source system"), ("a,b,a", "a listed twice")):
        with pytest.raises(InvalidInputError, match=phrase):
            SuccessionPolicy.from_env({"IDMINTER_SUCCESSION_PRECEDENCE": bad})


# -- the pipeline, SQLite store, real registry ----------------------------------------------------


def test_a_late_update_of_a_predecessor_is_superseded_not_written(store, minter, pool):
    old = work(SIERRA, "b1")
    new = work(FOLIO, "f1", predecessor=(SIERRA, "b1"))
    store.put_source([old, new])
    _run(store, minter, old.id)
    assert _run(store, minter, new.id).works_written == 1
    assert _holder(store, minter, old.id) == new.id

    late = _run(store, minter, old.id)
    assert (late.works_written, late.works_superseded) == (0, 1)
    assert late.superseded == [SupersededWork(old.id, new.id)]
    assert late.as_dict()["superseded"] == [{"sourceIdentifier": old.id, "heldBy": new.id}]
    assert late.processed == []
    assert _holder(store, minter, old.id) == new.id
    # The successor itself re-written replaces its own document (equal rank).
    assert _run(store, minter, new.id).works_written == 1


def _chain_of_three() -> dict[str, SourceWork]:
    """a, then b succeeding a, then c succeeding b: c is the chain's newest record."""
    return {
        "a": work(SIERRA, "b1"),
        "b": work(FOLIO, "f1", predecessor=(SIERRA, "b1")),
        "c": work(AXIELL, "x1", predecessor=(FOLIO, "f1")),
    }


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
def test_a_chain_of_three_keeps_the_newest_record_in_every_order(store, minter, pool, order):
    works = _chain_of_three()
    store.put_source(works.values())
    for name in "abc":  # first processing: a predecessor must be registered first
        _run(store, minter, works[name].id)
    for name in order:  # re-processing, one work per run
        summary = _run(store, minter, works[name].id)
        assert summary.works_written == (name == "c")
        assert _holder(store, minter, works["a"].id) == works["c"].id
    # All three in one batch, in this order: one written, two superseded.
    summary = _run(store, minter, *(works[name].id for name in order))
    assert (summary.works_written, summary.works_superseded) == (1, 2)
    assert {s.held_by for s in summary.superseded} == {works["c"].id}
    assert _holder(store, minter, works["a"].id) == works["c"].id


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
def test_a_new_chain_in_one_batch_is_written_as_its_newest_record(store, minter, pool, order):
    works = _chain_of_three()
    store.put_source(works.values())
    summary = _run(store, minter, *(works[name].id for name in order))
    assert (summary.works_written, summary.works_superseded, summary.inherited) == (1, 2, 2)
    assert summary.processed == [works["c"].id]
    assert _holder(store, minter, works["a"].id) == works["c"].id


def test_two_live_successors_are_reported_and_decided_by_the_tie_rule(store, minter, pool):
    old = work(SIERRA, "b1")
    folio = work(FOLIO, "f1", predecessor=(SIERRA, "b1"))
    axiell = work(AXIELL, "x1", predecessor=(SIERRA, "b1"))
    store.put_source([old, folio, axiell])
    _run(store, minter, old.id)
    _run(store, minter, folio.id)
    first = _run(store, minter, axiell.id)  # RFC 083 scenario 2: both inherit the ID
    assert first.works_written == 1 and len(first.succession_conflicts) == 1
    for order in itertools.permutations([old.id, folio.id, axiell.id]):
        for work_id in order:
            summary = _run(store, minter, work_id)
            [conflict] = summary.succession_conflicts.values()
            assert (conflict.holder, conflict.others) == (axiell.id, (folio.id,))
            assert summary.as_dict()["succession_conflicts"][0]["heldBy"] == axiell.id
        assert _holder(store, minter, old.id) == axiell.id
    # The tie rule is configuration. A changed rule cannot lower a rank already stored: the
    # document stays put (deterministically) until the repair re-hands it.
    folio_first = SuccessionPolicy((FOLIO, AXIELL))
    for work_id in (old.id, folio.id, axiell.id):
        summary = _run(store, minter, work_id, succession=folio_first)
        assert summary.works_written == 0 and summary.works_superseded == 1
    assert _holder(store, minter, old.id) == axiell.id
    report = repair_succession(
        store, minter, folio_first, apply=True, run=_runner(store, minter, folio_first)
    )
    assert (report.outranked, report.works_written, report.works_failed) == (1, 1, 0)
    for order in itertools.permutations([old.id, folio.id, axiell.id]):
        for work_id in order:
            _run(store, minter, work_id, succession=folio_first)
        assert _holder(store, minter, old.id) == folio.id
    assert repair_succession(store, minter, folio_first, apply=False).listed == []


def _runner(store, minter, policy=None):
    return lambda scope: WorksPipeline(store, minter, succession=policy).run(scope)


def test_the_repair_puts_right_a_store_written_before_ranks(store, minter, pool):
    works = list(generate_works(60, seed=5))
    store.put_source(works)
    _run_all = WorksPipeline(store, minter).run(FullScope())
    assert _run_all.failed == 0
    chains = [
        (w.id, str(e.predecessor))
        for w in works
        if (e := extract_work(w.document, document_id=w.id)).predecessor is not None
    ]
    assert len(chains) > 10
    by_id = {w.id: w for w in works}
    # What the old store did: every document unranked, and a late update of each predecessor
    # written over its successor's.
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE identified_works SET succession_rank = 0")
        for successor, predecessor in chains:
            [canonical_id] = minter.lookup_ids([SourceIdentifier.parse(successor)]).values()
            db.execute(
                "UPDATE identified_works SET source_id = ?, document = ? WHERE canonical_id = ?",
                (predecessor, json.dumps(by_id[predecessor].document), canonical_id),
            )
    db.close()

    dry = repair_succession(
        store, minter, SuccessionPolicy(), apply=False, run=_runner(store, minter)
    )
    assert (dry.wrong_holder, dry.unranked, dry.works_written) == (len(chains), 0, 0)
    # The sample's Folio items inherited their Sierra items' IDs too: no chains of works.
    assert dry.chains_checked == len(chains)
    assert len(minter.chained_ids(limit=1_000)) == len(chains)
    assert {d.holder for d in dry.listed} == {successor for successor, _ in chains}
    assert all(_holder(store, minter, s) == p for s, p in chains)  # a dry run writes nothing

    applied = repair_succession(
        store, minter, SuccessionPolicy(), apply=True, run=_runner(store, minter)
    )
    assert (applied.works_written, applied.works_failed) == (len(chains), 0)
    assert all(_holder(store, minter, s) == s for s, _ in chains)
    assert repair_succession(store, minter, SuccessionPolicy(), apply=False).listed == []
    # Works of no chain keep their unranked documents: only chains compete.
    for predecessor in (p for _, p in chains):
        assert _run(store, minter, predecessor).works_superseded == 1


def test_a_store_refuses_a_lower_rank_whatever_the_pipeline_knew(store):
    """The race the pipeline cannot see (its chain read came before the successor inherited):
    the store's conditional upsert refuses the stale write and names the holder."""
    newer = IdentifiedWork("abcd2345", "Work[folio-instance/f1]", {"v": "new"}, RANKED + 5)
    older = IdentifiedWork("abcd2345", "Work[sierra-system-number/b1]", {"v": "old"}, RANKED + 1)
    assert store.write_identified([newer]) == []
    [refused] = store.write_identified([older])
    assert (refused.source_id, refused.superseded_by) == (older.source_id, newer.source_id)
    assert store.get_identified(["abcd2345"])["abcd2345"] == {"v": "new"}
    # Two writes under one ID in one call: the higher rank is written, in either order.
    for pair in ([older, newer], [newer, older]):
        [refused] = store.write_identified(pair)
        assert refused.source_id == older.source_id and refused.superseded_by == newer.source_id
        assert store.identified_holders(["abcd2345"])["abcd2345"].rank == RANKED + 5


def test_a_store_written_before_ranks_gets_the_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE identified_works (canonical_id TEXT PRIMARY KEY, source_id TEXT NOT "
            "NULL, document TEXT NOT NULL)"
        )
        db.execute("INSERT INTO identified_works VALUES ('abcd2345', 'Work[x/1]', '{}')")
    db.close()
    with SqliteWorksStore(path) as store:
        assert store.identified_holders(["abcd2345"])["abcd2345"].rank == 0
        ranked = IdentifiedWork("abcd2345", "Work[x/2]", {"v": 2}, RANKED)
        assert store.write_identified([ranked]) == []
        assert store.get_identified(["abcd2345"])["abcd2345"] == {"v": 2}


# -- real concurrent processes ------------------------------------------------------------------

TRIALS = 12


def _race_worker(settings, store_path, work_ids, barrier, results) -> None:
    """Process the given works one per run, each run starting with the other process's."""
    outcomes = []
    with SqliteWorksStore(store_path) as store, Minter(lambda: connect(settings)) as minter:
        pipeline = WorksPipeline(store, minter)
        for work_id in work_ids:
            barrier.wait(timeout=60)
            summary = pipeline.run(IdsScope([work_id]))
            outcomes.append((summary.works_written, summary.works_superseded, summary.failed))
    results.put(outcomes)


def test_a_predecessor_and_its_successor_processed_at_once_end_with_the_successor(
    registry, tmp_path, minter, pool
):
    store_path = tmp_path / "works.sqlite3"
    olds = [work(SIERRA, f"b{n}") for n in range(TRIALS)]
    news = [work(FOLIO, f"f{n}", predecessor=(SIERRA, f"b{n}")) for n in range(TRIALS)]
    with SqliteWorksStore(store_path) as store:
        store.put_source([*olds, *news])
        _run(store, minter, *(w.id for w in olds))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(
            target=_race_worker, args=(registry, store_path, [w.id for w in ws], barrier, results)
        )
        for ws in (news, olds)  # successors inheriting for the first time; predecessors again
    ]
    outcomes = results_of(processes, results)
    for runs in outcomes:
        assert len(runs) == TRIALS and all(failed == 0 for _, _, failed in runs)
    with SqliteWorksStore(store_path) as store:
        holders = [_holder(store, minter, old.id) for old in olds]
    assert holders == [new.id for new in news]


class _StaleWriter(WorksPipeline):
    """Writes only once the other process has written: its chain read is stale by then."""

    def __init__(self, *args, read_done, other_written, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_done, self.other_written = read_done, other_written

    def _write(self, identified, summary, ranks):
        self.read_done.set()
        assert self.other_written.wait(timeout=120)
        return super()._write(identified, summary, ranks)


def _stale_predecessor(settings, store_path, work_ids, signals):
    read_done, other_written, results = signals
    with SqliteWorksStore(store_path) as store, Minter(lambda: connect(settings)) as minter:
        pipeline = _StaleWriter(store, minter, read_done=read_done, other_written=other_written)
        summary = pipeline.run(IdsScope(work_ids))
    results.put((summary.works_written, summary.works_superseded, summary.failed))


def _successor_after(settings, store_path, work_ids, signals):
    read_done, other_written, results = signals
    assert read_done.wait(timeout=120)
    with SqliteWorksStore(store_path) as store, Minter(lambda: connect(settings)) as minter:
        summary = WorksPipeline(store, minter).run(IdsScope(work_ids))
    other_written.set()
    results.put((summary.works_written, summary.works_superseded, summary.failed))


def test_a_predecessor_write_based_on_a_stale_chain_read_is_refused_by_the_store(
    registry, tmp_path, minter, pool
):
    """The interleaving check-then-write loses: the predecessor's run reads the chains before
    the successors inherit, and writes after they are written. Two real processes; the order
    is forced with events, not timing."""
    store_path = tmp_path / "works.sqlite3"
    olds = [work(SIERRA, f"b{n}") for n in range(50)]
    news = [work(FOLIO, f"f{n}", predecessor=(SIERRA, f"b{n}")) for n in range(50)]
    with SqliteWorksStore(store_path) as store:
        store.put_source([*olds, *news])
        _run(store, minter, *(w.id for w in olds))
    context = multiprocessing.get_context("spawn")
    read_done, other_written, results = context.Event(), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=target,
            args=(registry, store_path, [w.id for w in ws], (read_done, other_written, results)),
        )
        for target, ws in ((_stale_predecessor, olds), (_successor_after, news))
    ]
    outcomes = sorted(results_of(processes, results))
    # The predecessors' run: none written, all superseded (refused by the store), none failed.
    assert outcomes == [(0, 50, 0), (50, 0, 0)]
    with SqliteWorksStore(store_path) as store:
        assert [_holder(store, minter, old.id) for old in olds] == [new.id for new in news]


def test_a_work_outranked_by_its_own_older_document_fails_pointing_at_the_repair(
    store, minter, pool
):
    """Ranks only go up: after a tie-rule change the holder's own document may carry a higher
    rank than the holder now writes with. The write is refused and the work fails, saying what
    to run, instead of counting as written or superseded."""
    old = work(SIERRA, "b1")
    folio = work(FOLIO, "f1", predecessor=(SIERRA, "b1"))
    store.put_source([old, folio])
    _run(store, minter, old.id)
    _run(store, minter, folio.id)
    demoted = SuccessionPolicy((AXIELL,))  # Folio now ranks below every listed system
    summary = WorksPipeline(store, minter, succession=demoted).run(IdsScope([folio.id]))
    assert summary.works_written == 0 and summary.works_superseded == 0
    [failure] = summary.failures
    assert failure.work_id == folio.id and "repair-succession --apply" in failure.detail
    report = repair_succession(
        store, minter, demoted, apply=True, run=_runner(store, minter, demoted)
    )
    assert (report.outranked, report.works_written, report.works_failed) == (1, 1, 0)
    assert _run(store, minter, folio.id, succession=demoted).works_written == 1


def test_succession_costs_at_most_one_registry_read_per_batch(store, minter, pool):
    store.put_source(generate_works(50, seed=6))
    first = WorksPipeline(store, minter, batch_size=10).run(FullScope())
    assert 0 < minter.stats.chain_reads <= first.batches == 5
    reads = minter.stats.chain_reads
    again = WorksPipeline(store, minter, batch_size=10).run(FullScope())
    assert minter.stats.chain_reads - reads == again.batches == 5
    # Only IDs a batch did not just mint are read: a batch of brand-new works reads nothing.
    store.put_source([work(SIERRA, f"b-new-{n}") for n in range(5)])
    reads = minter.stats.chain_reads
    fresh = WorksPipeline(store, minter).run(
        IdsScope([f"Work[{SIERRA}/b-new-{n}]" for n in range(5)])
    )
    assert fresh.works_written == 5 and minter.stats.chain_reads == reads


# -- the deepest chain a rank orders --------------------------------------------------------------


def _chain_of(length: int) -> list:
    """`length` works, each declaring the one before as its predecessor."""
    works = [work(SIERRA, "c0000")]
    for n in range(1, length):
        works.append(work(SIERRA, f"c{n:04d}", predecessor=(SIERRA, f"c{n - 1:04d}")))
    return works


@pytest.mark.parametrize("batch_size", [500, 100], ids=["one batch", "across batches"])
def test_a_chain_past_the_deepest_rank_is_refused_at_mint_and_the_rest_keeps_its_holder(
    store, minter, pool, batch_size
):
    """260 records in a chain: the newest 4 would sit deeper than the 255 a rank's depth holds.
    Each fails alone at mint, naming itself and the limit; records 0 to 255 are minted and the
    deepest of them holds the document; the repair agrees that nothing is stale."""
    works = _chain_of(260)
    store.put_source(works)
    summary = WorksPipeline(store, minter, batch_size=batch_size).run(
        IdsScope(tuple(w.id for w in works))
    )
    refused = {failure.work_id: failure for failure in summary.failures}
    assert sorted(refused) == [w.id for w in works[256:]]
    for depth, deep in enumerate(works[256:], start=256):
        failure = refused[deep.id]
        assert failure.stage == "mint"
        assert f"depth {depth}" in failure.detail
        assert "up to depth 255" in failure.detail
    assert minter.lookup_ids([SourceIdentifier.parse(w.id) for w in works[256:]]) == {}
    assert summary.works_written + summary.works_superseded == 256
    assert summary.succession_conflicts == {}
    assert _holder(store, minter, works[0].id) == works[255].id
    report = repair_succession(store, minter, SuccessionPolicy(), apply=False)
    assert (report.listed, report.too_deep) == ([], {})


def test_a_successor_of_the_deepest_record_is_refused_in_a_later_call(minter, pool):
    sources = [SourceIdentifier("Work", SIERRA, f"c{n:04d}") for n in range(257)]
    minter.mint_ids(
        [MintRequest(s, p) for s, p in zip(sources[:256], [None, *sources[:255]], strict=True)]
    )
    with pytest.raises(ChainTooDeepError) as refused:
        minter.mint_ids([MintRequest(sources[256], sources[255])])
    ((source, predecessor, _, depth),) = refused.value.too_deep
    assert (source, predecessor, depth) == (sources[256], sources[255], 256)
    assert str(sources[256]) in str(refused.value) and "depth 255" in str(refused.value)
    assert minter.lookup_ids([sources[256]]) == {}


def test_a_chain_deeper_than_a_rank_orders_is_told_apart():
    edges = [
        Inheritance("abcd2345", n, _key(SIERRA, f"c{n:04d}"), _key(SIERRA, f"c{n - 1:04d}"))
        for n in range(1, 260)
    ]
    [chain] = build_chains(edges, SuccessionPolicy()).values()
    assert chain.deepest == 259 and chain.too_deep
    assert chain.holder == _key(SIERRA, "c0259")
