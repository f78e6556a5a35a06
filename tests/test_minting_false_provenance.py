"""Provenance under contention describes the committed registry, with no false mismatch.

A call that loses the race for a predecessor *and* its successor (another minter committed both
after this call's lookup) used to record a `predecessor_mismatch` naming the ID it had claimed for
the predecessor: an ID that stayed free and later went to an unrelated source. The interleaving
is forced here with two real connections, never left to chance: a hook runs inside the first
minter's transaction, right after its lookup, and lets the other minter commit there (or holds
the other minter's transaction open until the first one waits for its row locks).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from db_helpers import fetch_all, starmap_in_processes, wait_until_waiting_for_a_lock
from minting_helpers import check_invariants, fill_pool, work

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry import reconciliation as rc
from idminter_pipeline.registry.connection import Connection, connect
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest

PREDECESSOR = work("sierra-system-number", "b1000001")
SUCCESSOR = SourceIdentifier("Image", "axiell-collections-id", "AC-1")  # across ontology types


class _MinterWithHook(Minter):
    """A real minter that runs `after_lookup` once, inside its first transaction, between the
    lookup and the claim of free IDs: the moment another minter's commit makes this call's plan
    lose its races."""

    def __init__(self, *args: object, after_lookup, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._after_lookup = after_lookup

    def _claim_free_ids(self, conn: Connection, needed: int) -> list[str]:
        hook, self._after_lookup = self._after_lookup, None
        if hook is not None:
            hook()
        return super()._claim_free_ids(conn, needed)


class _PausedMinter(Minter):
    """A real minter whose transaction, its statements all sent, waits for `release` before it
    commits: its row locks are held exactly as long as the test says."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.ready = threading.Event()
        self.release = threading.Event()

    def _mint(self, *args, **kwargs):
        results = super()._mint(*args, **kwargs)
        self.ready.set()
        assert self.release.wait(timeout=60), "the test never released the other minter"
        return results


def _free_ids(settings: DatabaseSettings) -> set[str]:
    rows = fetch_all(settings, "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free'")
    return {canonical_id for (canonical_id,) in rows}


def _provenance(settings: DatabaseSettings) -> list[tuple]:
    return fetch_all(
        settings,
        "SELECT Kind, SuccessorSourceId, PredecessorSourceId, CanonicalId, PredecessorCanonicalId"
        " FROM identifier_provenance ORDER BY Seq",
    )


def _lose_both_races(settings, connect_registry, other_requests, *, while_waiting: bool):
    """This call mints PREDECESSOR and SUCCESSOR (inheriting); after its lookup, another minter
    on its own connection commits `other_requests`. With `while_waiting`, the other minter's
    transaction is held open until this call waits for its row locks, then commits."""
    requests = [MintRequest(PREDECESSOR), MintRequest(SUCCESSOR, PREDECESSOR)]
    other = _PausedMinter(connect_registry)
    if not while_waiting:
        other.release.set()
    with ThreadPoolExecutor(2) as threads:
        other_call = []

        def let_the_other_minter_in() -> None:
            other_call.append(threads.submit(other.mint_ids, other_requests, job_id="other"))
            if not while_waiting:
                # Committed before this call's claim and insert.
                other_call[0].result(timeout=60)
            else:
                # Its rows are written and locked, not committed.
                assert other.ready.wait(timeout=60)

        with _MinterWithHook(connect_registry, after_lookup=let_the_other_minter_in) as minter:
            thread_id = minter.connection.thread_id()
            this_call = threads.submit(minter.mint_ids, requests, job_id="this")
            if while_waiting:
                while not other.ready.is_set():
                    other.ready.wait(0.01)
                wait_until_waiting_for_a_lock(settings, thread_id)
                other.release.set()
            results = this_call.result(timeout=60)
            other_results = other_call[0].result(timeout=60)
            stats = minter.stats
    other.close()
    return results, other_results, stats


@pytest.mark.parametrize("while_waiting", [False, True], ids=["committed-first", "held-open"])
def test_losing_a_predecessor_and_its_successor_records_no_mismatch(
    registry, connect_registry, while_waiting
):
    pool = fill_pool(registry, 6)
    results, other_results, stats = _lose_both_races(
        registry,
        connect_registry,
        [MintRequest(PREDECESSOR), MintRequest(SUCCESSOR, PREDECESSOR)],
        while_waiting=while_waiting,
    )
    winner = other_results[PREDECESSOR].canonical_id
    assert other_results[SUCCESSOR].canonical_id == winner
    # Both races were lost, and the call answers with the committed IDs.
    assert stats.lost_races == 2
    assert stats.retries == 0  # nothing of this call inherits from a lost key: no stale plan
    assert {s: (r.canonical_id, r.outcome) for s, r in results.items()} == {
        PREDECESSOR: (winner, MintOutcome.EXISTING),
        SUCCESSOR: (winner, MintOutcome.EXISTING),
    }
    # Provenance holds the winner's inheritance and nothing else: the successor and its
    # predecessor share one ID, so there is no mismatch to record.
    assert _provenance(registry) == [("inherited", "AC-1", "b1000001", winner, winner)]
    assert stats.mismatches_recorded == 0
    # The ID this call claimed is free again, and nothing names it.
    assert _free_ids(registry) == set(pool) - {winner}
    report = rc.reconcile(connect_registry, batch_size=100)
    assert report.result(rc.PREDECESSOR_MISMATCHES).count == 0
    check_invariants(registry)


@pytest.mark.parametrize("while_waiting", [False, True], ids=["committed-first", "held-open"])
def test_a_real_mismatch_after_losing_both_races_names_the_predecessors_real_id(
    registry, connect_registry, while_waiting
):
    """The other minter mints both as unrelated sources: now the IDs differ, and the recorded
    mismatch names the predecessor's committed ID, not the one this call had claimed."""
    pool = fill_pool(registry, 6)
    results, other_results, stats = _lose_both_races(
        registry,
        connect_registry,
        [MintRequest(PREDECESSOR), MintRequest(SUCCESSOR)],
        while_waiting=while_waiting,
    )
    predecessor_id = other_results[PREDECESSOR].canonical_id
    successor_id = other_results[SUCCESSOR].canonical_id
    assert predecessor_id != successor_id
    assert results[SUCCESSOR].canonical_id == successor_id
    assert _provenance(registry) == [
        ("predecessor_mismatch", "AC-1", "b1000001", successor_id, predecessor_id)
    ]
    assert stats.mismatches_recorded == 1
    assert _free_ids(registry) == set(pool) - {predecessor_id, successor_id}


# -- eight processes ---------------------------------------------------------------------------

FAMILIES = 40
ROUNDS = 30
PROCESSES = 8


def _family(n: int) -> tuple[SourceIdentifier, SourceIdentifier, SourceIdentifier]:
    """A Sierra work, its Axiell successor as an Image (across ontology types), and a Folio
    successor of that (a chain)."""
    return (
        work("sierra-system-number", f"b{n:07d}"),
        SourceIdentifier("Image", "axiell-collections-id", f"AC-{n}"),
        work("folio-instance", f"in{n:07d}"),
    )


def _round_requests(process: int, round_: int) -> list[MintRequest]:
    """Every process asks for the same few families in the same round (so they race for whole
    families), each in its own order and shape: whole chains, a successor with its predecessor,
    and now and then a successor without its predecessor (which makes real mismatches)."""
    import random  # noqa: PLC0415 - spawned workers import this module afresh

    shared = random.Random(f"round/{round_}")
    own = random.Random(f"round/{round_}/process/{process}")
    requests: list[MintRequest] = []
    for n in shared.sample(range(FAMILIES), 6):
        root, heir, chained = _family(n)
        shape = own.random()
        if shape < 0.5:
            requests += [MintRequest(root), MintRequest(heir, root), MintRequest(chained, heir)]
        elif shape < 0.8:
            requests += [MintRequest(heir, root), MintRequest(root)]
        elif shape < 0.9:
            requests += [MintRequest(chained, heir), MintRequest(heir, root), MintRequest(root)]
        else:
            requests += [MintRequest(heir), MintRequest(root)]
    own.shuffle(requests)
    return requests


def _racing_process(settings: DatabaseSettings, process: int, barrier) -> dict:
    failures: list[str] = []
    with Minter(lambda: connect(settings)) as minter:
        minter.lookup_ids([work("warm-up", str(process))])  # connected before the first round
        for round_ in range(ROUNDS):
            barrier.wait(timeout=300)
            try:
                minter.mint_ids(_round_requests(process, round_), job_id=f"p{process}")
            except Exception as error:
                failures.append(f"round {round_}: {type(error).__name__}: {error}"[:300])
        return {"failures": failures, **minter.stats.as_dict()}


def test_eight_processes_record_no_false_mismatch(registry):
    """Every `predecessor_mismatch` row holds for the committed mappings: the successor's row
    has its recorded ID, the predecessor's recorded ID is its committed one (or it has none),
    and the two differ."""
    import multiprocessing  # noqa: PLC0415

    fill_pool(registry, FAMILIES * 3 + 200)
    with multiprocessing.get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(PROCESSES)
        reports = starmap_in_processes(
            _racing_process, [(registry, process, barrier) for process in range(PROCESSES)]
        )
    assert [r["failures"] for r in reports] == [[]] * PROCESSES
    # The processes really raced for the same keys.
    assert sum(r["lost_races"] for r in reports) > 0

    false_rows = fetch_all(
        registry,
        "SELECT p.Seq, p.SuccessorOntologyType, p.SuccessorSourceId, p.CanonicalId, "
        "s.CanonicalId, p.PredecessorSourceId, p.PredecessorCanonicalId, q.CanonicalId "
        "FROM identifier_provenance p "
        "LEFT JOIN identifiers s ON s.OntologyType = p.SuccessorOntologyType "
        "AND s.SourceSystem = p.SuccessorSourceSystem AND s.SourceId = p.SuccessorSourceId "
        "LEFT JOIN identifiers q ON q.OntologyType = p.PredecessorOntologyType "
        "AND q.SourceSystem = p.PredecessorSourceSystem AND q.SourceId = p.PredecessorSourceId "
        "WHERE p.Kind = 'predecessor_mismatch' AND NOT ("
        " s.CanonicalId <=> p.CanonicalId AND q.CanonicalId <=> p.PredecessorCanonicalId"
        " AND NOT (s.CanonicalId <=> q.CanonicalId))",
    )
    assert false_rows == []
    (mismatches,) = fetch_all(
        registry, "SELECT COUNT(*) FROM identifier_provenance WHERE Kind = 'predecessor_mismatch'"
    )[0]
    print(
        f"{PROCESSES} processes x {ROUNDS} rounds: lost races",
        sum(r["lost_races"] for r in reports),
        "retries",
        sum(r["retries"] for r in reports),
        "mismatch rows (all true)",
        mismatches,
    )
    # No ID is named by provenance unless it is assigned (a false row named a free one).
    assert (
        fetch_all(
            registry,
            "SELECT p.PredecessorCanonicalId FROM identifier_provenance p "
            "JOIN canonical_ids c ON c.CanonicalId = p.PredecessorCanonicalId "
            "WHERE c.Status <> 'assigned'",
        )
        == []
    )
    check_invariants(registry)
