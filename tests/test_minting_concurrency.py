"""Concurrency with real connections, threads and processes (RFC "Concurrency scenarios")."""

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from db_helpers import fetch_all, starmap_in_processes, wait_until_waiting_for_a_lock
from minting_helpers import check_invariants, fill_pool, pool_counts, register, work

from idminter_pipeline.core.errors import RegistryContentionError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintOutcome, MintRequest

# Its races are staged between sessions it times against each other: one worker runs them all.
pytestmark = pytest.mark.xdist_group("minting_concurrency")

INSERT_MAPPING = (
    "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
    "VALUES (%s, %s, %s, %s)"
)


def _mint_in_threads(connect_registry, batches):
    barrier = threading.Barrier(len(batches))

    def run(batch):
        with Minter(connect_registry) as minter:
            assert minter.connection.open  # connected before the race starts
            barrier.wait()
            return minter.mint_ids(batch)

    with ThreadPoolExecutor(len(batches)) as pool:
        return list(pool.map(run, batches))


def test_five_minters_racing_on_one_new_source_get_one_id(registry, connect_registry):
    """RFC scenario 1 / notebook test 1: one ID for all, one pool ID consumed."""
    fill_pool(registry, 20)
    source = work("race-test", "RACE-TEST-1")
    results = _mint_in_threads(connect_registry, [[MintRequest(source)]] * 5)
    ids = {r[source].canonical_id for r in results}
    assert len(ids) == 1
    assert sum(r[source].outcome is MintOutcome.MINTED for r in results) == 1
    assert pool_counts(registry) == {"free": 19, "assigned": 1}
    check_invariants(registry)


def test_ten_minters_on_different_sources_get_ten_ids(registry, connect_registry):
    """Notebook test 2: ten distinct IDs, ten consumed."""
    fill_pool(registry, 20)
    sources = [work("race-test", f"RACE-TEST-2-{i}") for i in range(10)]
    results = _mint_in_threads(connect_registry, [[MintRequest(s)] for s in sources])
    assert len({r[s].canonical_id for r, s in zip(results, sources, strict=True)}) == 10
    assert pool_counts(registry) == {"free": 10, "assigned": 10}
    check_invariants(registry)


def test_successors_of_one_predecessor_racing_share_its_id(registry, connect_registry):
    """RFC scenario 2 with real concurrency: six minters, six successors, one predecessor."""
    register(registry, {("Work", "sierra-system-number", "b1234"): "abc23def"})
    predecessor = work("sierra-system-number", "b1234")
    successors = [SourceIdentifier(("Work", "Image")[i % 2], "axiell", f"AC-{i}") for i in range(6)]
    results = _mint_in_threads(
        connect_registry, [[MintRequest(s, predecessor)] for s in successors]
    )
    assert {r[s].canonical_id for r, s in zip(results, successors, strict=True)} == {"abc23def"}
    assert all(
        r[s].outcome is MintOutcome.INHERITED for r, s in zip(results, successors, strict=True)
    )
    assert fetch_all(
        registry, "SELECT COUNT(*) FROM identifier_provenance WHERE Kind = 'inherited'"
    ) == [(6,)]
    check_invariants(registry)


def _race_against_a_committing_writer(registry, minter, requests, key, winner_id):
    """The writer inserts `key` after the minter's lookup and commits while the minter waits."""
    writer = connect(registry)
    try:
        with writer.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'assigned')",
                (winner_id,),
            )
            cursor.execute(INSERT_MAPPING, (*key.as_key(), winner_id))
        thread_id = minter.connection.thread_id()
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(minter.mint_ids, requests)
            wait_until_waiting_for_a_lock(registry, thread_id)
            writer.commit()
            return future.result(timeout=30)
    finally:
        writer.close()


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_a_lost_race_returns_the_winners_id_and_leaves_ours_free(
    registry, connect_registry, isolation
):
    pool = fill_pool(registry, 5)
    source = work("race-test", "lost")
    with Minter(connect_registry, isolation_level=isolation) as minter:
        result = _race_against_a_committing_writer(
            registry, minter, [MintRequest(source)], source, "winner23"
        )
        assert minter.stats.lost_races == 1
        assert minter.stats.rereads == 1  # the insert's row count showed a key already existed
    assert result[source].canonical_id == "winner23"
    assert result[source].outcome is MintOutcome.EXISTING
    # The ID the minter claimed for the source is still free: no pool ID was consumed.
    assert pool_counts(registry) == {"free": 5, "assigned": 1}
    free = {
        c
        for (c,) in fetch_all(registry, "SELECT CanonicalId FROM canonical_ids WHERE Status='free'")
    }
    assert free == set(pool)
    check_invariants(registry)


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_a_lost_race_on_an_in_batch_predecessor_redoes_the_call(
    registry, connect_registry, isolation
):
    """Its successor must take the winner's ID, not the one this call claimed."""
    fill_pool(registry, 5)
    root, heir = work("sierra", "b1"), SourceIdentifier("Image", "axiell", "AC-1")
    with Minter(connect_registry, isolation_level=isolation) as minter:
        result = _race_against_a_committing_writer(
            registry, minter, [MintRequest(root), MintRequest(heir, root)], root, "winner23"
        )
        assert minter.stats.stale_plans == 1
    assert result[root].canonical_id == result[heir].canonical_id == "winner23"
    assert result[root].outcome is MintOutcome.EXISTING
    assert result[heir].outcome is MintOutcome.INHERITED
    assert pool_counts(registry) == {"free": 5, "assigned": 1}
    check_invariants(registry)


def test_a_lost_race_against_another_predecessor_is_recorded(registry, connect_registry):
    register(registry, {("Work", "sierra", "b1"): "abcdefgh"})
    heir = work("axiell", "AC-1")
    with Minter(connect_registry) as minter:
        result = _race_against_a_committing_writer(
            registry, minter, [MintRequest(heir, work("sierra", "b1"))], heir, "winner23"
        )
    assert result[heir].canonical_id == "winner23"
    assert fetch_all(
        registry,
        "SELECT Kind, CanonicalId, PredecessorCanonicalId FROM identifier_provenance",
    ) == [("predecessor_mismatch", "winner23", "abcdefgh")]


def _heavier_transaction_holding(registry, source):
    """An open transaction holding `source`'s row (ID 'otherabc') and 200 more, so that InnoDB
    picks the minter, the lighter transaction, as the deadlock victim."""
    other = connect(registry)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('otherabc', 'assigned')"
            )
            for i in range(200):
                cursor.execute(INSERT_MAPPING, ("Work", "filler", f"f{i}", "otherabc"))
            cursor.execute(INSERT_MAPPING, (*source.as_key(), "otherabc"))
    except BaseException:
        other.close()  # an open transaction would block the next test's cleanup
        raise
    return other


@contextmanager
def _deadlocked(registry, minter: Minter, requests: list[MintRequest]) -> Iterator[Future]:
    """`minter.mint_ids(requests)` running in a deadlock: a heavier transaction holds the second
    request's row and, once the minter waits for it, inserts the first's. InnoDB rolls the
    minter back; the other transaction then commits, and the block reads the mint's future."""
    first, second = requests[0].source, requests[1].source
    other = _heavier_transaction_holding(registry, second)
    try:
        thread_id = minter.connection.thread_id()
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(minter.mint_ids, requests)
            wait_until_waiting_for_a_lock(registry, thread_id)
            with other.cursor() as cursor:
                cursor.execute(INSERT_MAPPING, (*first.as_key(), "otherabc"))
            other.commit()
            yield future
    finally:
        other.close()


def test_a_deadlock_is_retried_and_counted(registry, connect_registry):
    """A real deadlock: the minter holds key a and wants b; the other holds b and wants a."""
    fill_pool(registry, 5)
    a, b = work("dead", "a"), work("dead", "b")
    with (
        Minter(connect_registry, backoff_seconds=0.01) as minter,
        _deadlocked(registry, minter, [MintRequest(a), MintRequest(b)]) as minted,
    ):
        # The retry finds the other transaction's rows.
        result = minted.result(timeout=30)
        assert minter.stats.deadlocks == 1
        assert minter.stats.retries >= 1
    assert result[a].canonical_id == result[b].canonical_id == "otherabc"
    assert pool_counts(registry)["free"] == 5


def test_contention_past_the_retry_budget_is_a_typed_error(registry, connect_registry):
    """With one attempt allowed, the deadlock surfaces as RegistryContentionError; nothing of
    the minter's call is committed."""
    fill_pool(registry, 5)
    requests = [MintRequest(work("dead", "a")), MintRequest(work("dead", "b"))]
    with (
        Minter(connect_registry, max_attempts=1) as minter,
        _deadlocked(registry, minter, [*requests, MintRequest(work("x", "y"))]) as minted,
        pytest.raises(RegistryContentionError) as caught,
    ):
        minted.result(timeout=30)
    assert caught.value.code == 1213
    assert fetch_all(registry, "SELECT COUNT(*) FROM identifiers WHERE SourceSystem = 'x'") == [
        (0,)
    ]
    assert pool_counts(registry)["free"] == 5


def test_a_lock_wait_timeout_is_retried_and_counted(registry, connect_registry):
    fill_pool(registry, 5)
    source = work("slow", "a")
    holder = connect(registry)
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('holderab', 'assigned')"
            )
            cursor.execute(INSERT_MAPPING, (*source.as_key(), "holderab"))
        with Minter(connect_registry, lock_wait_timeout_seconds=1, backoff_seconds=0.01) as minter:
            with ThreadPoolExecutor(1) as pool:
                future = pool.submit(minter.mint_ids, [MintRequest(source)])
                # Held until the minter has timed out on it once (under load its first attempt
                # may reach the lock late), then released.
                deadline = time.monotonic() + 30
                while minter.stats.lock_wait_timeouts < 1 and not future.done():
                    assert time.monotonic() < deadline, minter.stats
                    time.sleep(0.05)
                holder.rollback()
                result = future.result(timeout=30)
            assert minter.stats.lock_wait_timeouts >= 1
            assert minter.stats.attempts >= 2
    finally:
        holder.close()
    assert result[source].outcome is MintOutcome.MINTED
    check_invariants(registry)


# -- eight processes -------------------------------------------------------------------------


def _process_worker(settings: DatabaseSettings, seed: int, batches: int) -> dict:
    """One minter process: overlapping new keys, predecessors registered, in-batch and chained."""
    rng = random.Random(seed)
    with Minter(lambda: connect(settings)) as minter:
        failed: list[str] = []
        for _ in range(batches):
            requests = []
            # One predecessor per source within a batch (two would be refused as conflicting);
            # batches disagree with each other, which the minter records as mismatches.
            choices: dict[int, float] = {}
            for _ in range(rng.randint(20, 60)):
                n = rng.randrange(300)  # a small key space shared by all processes
                source = work("axiell", f"w{n}")
                choice = choices.setdefault(n, rng.random())
                if choice < 0.3:
                    predecessor = work("sierra", f"old{n % 50}")  # registered up front
                elif choice < 0.45:
                    predecessor = SourceIdentifier("Image", "folio", f"i{n}")
                    requests.append(MintRequest(predecessor))  # new in the same batch
                else:
                    predecessor = None
                requests.append(MintRequest(source, predecessor))
                if choice > 0.8:
                    requests.append(MintRequest(work("chain", f"c{n}"), source))
            try:
                minter.mint_ids(requests, job_id=f"proc-{seed}")
            except Exception as error:
                failed.append(repr(error))
        return {"failed": failed, **minter.stats.as_dict()}


def test_eight_processes_over_overlapping_keys_keep_the_invariants(registry):
    """No failed batch; one ID per source; IDs shared only through recorded predecessors;
    every referenced ID assigned and every assigned ID referenced."""
    register(
        registry,
        {
            ("Work", "sierra", f"old{i}"): f"old{i:02d}abc".replace("0", "a").replace("1", "b")[:8]
            for i in range(50)
        },
    )
    fill_pool(registry, 3000)
    reports = starmap_in_processes(_process_worker, [(registry, seed, 20) for seed in range(8)])
    assert [r["failed"] for r in reports] == [[]] * 8
    counts = check_invariants(registry)
    assert counts["mappings"] > 300
    # Batches disagreed about predecessors on purpose: the disagreements are on record.
    assert fetch_all(
        registry,
        "SELECT COUNT(*) > 0 FROM identifier_provenance WHERE Kind = 'predecessor_mismatch'",
    ) == [(1,)]
    minted = sum(r["minted"] for r in reports)
    assert pool_counts(registry)["assigned"] == minted + 50
    print(
        "8-process run:",
        counts,
        "retries",
        sum(r["retries"] for r in reports),
        "deadlocks",
        sum(r["deadlocks"] for r in reports),
        "lost races",
        sum(r["lost_races"] for r in reports),
        "stale plans",
        sum(r["stale_plans"] for r in reports),
    )
