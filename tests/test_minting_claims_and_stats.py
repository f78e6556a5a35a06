"""The free-ID claim skips IDs other transactions hold, and `Minter.stats` counts exactly.

Both were untested: removing `SKIP LOCKED` from the claim, or `stats.attempts += 1`, survived
the whole suite. The claim is asserted by its outcome (which IDs were taken, and that the call
completed while the other transaction still held its locks), never by a duration.
"""

from __future__ import annotations

from contextlib import closing

from db_helpers import fetch_all, read_innodb_trx, server_admin_connection
from minting_helpers import fill_pool, work

from idminter_pipeline.core.canonical_ids import PRODUCTION
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, connect
from idminter_pipeline.registry.minting import Minter, MinterStats, MintOutcome, MintRequest
from idminter_pipeline.registry.minting.statements import CLAIM_FREE_IDS_SQL


def _locked_rows(settings, thread_id: int) -> int:
    # Reading another session's transaction needs PROCESS, which the application user lacks.
    with closing(server_admin_connection(settings)) as conn:
        rows = read_innodb_trx(
            conn,
            "SELECT trx_rows_locked FROM information_schema.innodb_trx "
            "WHERE trx_mysql_thread_id = %s",
            (thread_id,),
        )
    return rows[0][0] if rows else 0


def test_a_claim_skips_the_ids_another_claim_holds_without_waiting(registry, connect_registry):
    pool = sorted(fill_pool(registry, 6))
    holder = connect(registry)
    try:
        with holder.cursor() as cursor:
            # Another minter's claim, still open: it holds the two lowest free IDs.
            cursor.execute(CLAIM_FREE_IDS_SQL, (PRODUCTION.lower, PRODUCTION.upper, 2))
            held = sorted(row[0] for row in cursor.fetchall())
        assert held == pool[:2]
        # One attempt and a one-second lock wait: a claim that waited would fail, not retry.
        with Minter(connect_registry, lock_wait_timeout_seconds=1, max_attempts=1) as minter:
            first, second = work("skip", "a"), work("skip", "b")
            results = minter.mint_ids([MintRequest(first), MintRequest(second)])
        # The call completed, and the other transaction still holds its locks.
        assert _locked_rows(registry, holder.thread_id()) >= 2
        minted = {results[first].canonical_id, results[second].canonical_id}
        assert len(minted) == 2 and minted <= set(pool[2:])
        assert {r.outcome for r in results.values()} == {MintOutcome.MINTED}
        assert minter.stats.attempts == 1 and minter.stats.lock_wait_timeouts == 0
    finally:
        holder.rollback()
        holder.close()
    assert {
        row[0]
        for row in fetch_all(
            registry, "SELECT CanonicalId FROM canonical_ids WHERE Status = 'assigned'"
        )
    } == minted


def _stats(**counts: int) -> dict[str, int]:
    return {**MinterStats().as_dict(), **counts}


def test_stats_count_each_call_attempt_and_outcome_exactly(registry, connect_registry):
    fill_pool(registry, 5)
    root, heir = work("sierra", "b1"), SourceIdentifier("Image", "axiell", "AC-1")
    with Minter(connect_registry) as minter:
        assert minter.stats.as_dict() == _stats()
        minter.mint_ids([MintRequest(root), MintRequest(heir, root), MintRequest(work("m", "x"))])
        assert minter.stats.as_dict() == _stats(calls=1, attempts=1, minted=2, inherited=1)
        minter.lookup_ids([root, work("absent", "z")])
        minter.mint_ids([MintRequest(heir, root)])
        minter.aliases(minter.lookup_ids([root])[root])
        assert minter.stats.as_dict() == _stats(
            calls=5, attempts=5, minted=2, inherited=1, existing=1
        )
        # A registered source declaring another predecessor: one mismatch recorded.
        minter.mint_ids([MintRequest(heir, work("m", "x"))])
        assert minter.stats.as_dict() == _stats(
            calls=6, attempts=6, minted=2, inherited=1, existing=2, mismatches_recorded=1
        )
        # Nothing to do: no call, no attempt.
        assert minter.mint_ids([]) == {} and minter.lookup_ids([]) == {}
        assert minter.stats.calls == 6 and minter.stats.attempts == 6


class _LosesTheRootOnce(Minter):
    """After its first lookup, another minter commits the root this call plans to mint."""

    def __init__(self, settings, root) -> None:
        super().__init__(lambda: connect(settings))
        self._settings, self._root, self._done = settings, root, False

    def _claim_free_ids(self, conn: Connection, needed: int) -> list[str]:
        if not self._done:
            self._done = True
            with Minter(lambda: connect(self._settings)) as other:
                other.mint_ids([MintRequest(self._root)])
        return super()._claim_free_ids(conn, needed)


def test_stats_count_a_stale_plan_retry_exactly(registry):
    fill_pool(registry, 5)
    root, heir = work("sierra", "b1"), SourceIdentifier("Image", "axiell", "AC-1")
    with _LosesTheRootOnce(registry, root) as minter:
        results = minter.mint_ids([MintRequest(root), MintRequest(heir, root)])
        # Attempt 1: the root's insert lost to the other minter while the heir inherited the
        # planned ID: stale, redone. Attempt 2: the root exists, the heir inherits its ID.
        assert minter.stats.as_dict() == _stats(
            calls=1,
            attempts=2,
            retries=1,
            stale_plans=1,
            lost_races=1,
            rereads=1,
            inherited=1,
            existing=1,
        )
    assert results[heir].canonical_id == results[root].canonical_id
    assert results[root].outcome is MintOutcome.EXISTING
