"""Batch lookup and batch minting of canonical IDs (RFC 083, "ID Minter logic").

One `mint_ids` call is one transaction of at most 8 SQL statements, whatever the batch size
(docs/design/minting.md), as long as each fits in the server's `max_allowed_packet` (read once
per connection); a batch that would not is sent as more statements of the same kind, each that
fits (`registry.packets`). Steps with nothing to do are skipped:

1. lookup of every requested source and declared predecessor (one `UNION ALL` statement);
2. claim of free IDs (`SELECT ... FOR UPDATE SKIP LOCKED LIMIT n`), if something needs a new ID,
   from a random point of the registry's partition, each row probed for a mapping (`claims`);
3. if a new source inherits a registered ID, a read of the chains it extends: a successor
   deeper than `MAX_CHAIN_DEPTH` is refused (`ChainTooDeepError`) with nothing written;
4. one multi-row idempotent insert (`ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId`);
5. a locking re-read of the inserted keys, which sees rows other minters committed meanwhile,
   when the insert's affected-row count shows that some key already existed;
6. `UPDATE canonical_ids` marking assigned only the claimed IDs that ended up used;
7. one multi-row insert into `identifier_provenance` (inheritances and predecessor mismatches);
8. `COMMIT`.

Every statement that touches many rows lists them sorted, so concurrent minters take row locks in
the same order; deadlocks and lock-wait timeouts that still happen are retried for the whole
transaction with bounded, jittered backoff (tenacity), and counted in `Minter.stats`.

A `Minter` holds one connection and is not thread-safe: give each thread or process its own.

This module runs the SQL: the connection, the transaction and its retries, each call's statements.
What a call decides without SQL is in `plan`, the statements' text in `statements`, the claim in
`claims`; callers import from `registry.minting`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeVar

import pymysql
from pymysql.constants import CLIENT
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_random_exponential,
)

from idminter_pipeline.core.canonical_ids import PRODUCTION, IdPartition, validate_canonical_id
from idminter_pipeline.core.errors import InvalidInputError, RegistryContentionError
from idminter_pipeline.core.job_ids import check_job_id
from idminter_pipeline.core.predecessor_cycles import reject_cycles
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.forks import registry_partition
from idminter_pipeline.registry.minting.aliases import Alias, aliases_from_rows
from idminter_pipeline.registry.minting.chains import (
    Inheritance,
    read_chained_ids,
    read_inheritances,
    registered_depths,
)
from idminter_pipeline.registry.minting.claims import claim_free_ids
from idminter_pipeline.registry.minting.plan import (
    BatchPlan,
    Key,
    MintOutcome,
    MintRequest,
    MintResult,
    _Event,
    _inheritance,
    _mismatch,
    _validated_sources,
    fold_requests,
    pad_space,
    source_key,
)
from idminter_pipeline.registry.minting.statements import (
    ALIASES_SQL,
    insert_mappings_statements,
    keyed_selects,
    mark_assigned_statements,
    record_events_statements,
)
from idminter_pipeline.registry.outage import RetryBudget, is_outage, log_outage_retry, outage_bound
from idminter_pipeline.registry.packets import max_allowed_packet, statement_budget
from idminter_pipeline.registry.schema import require_project_schema

logger = logging.getLogger(__name__)
T = TypeVar("T")

# SourceId IN-lists per lookup branch: every branch must stay a range scan of PRIMARY. A
# row-constructor IN over thousands of tuples can fall off the index on MySQL, a long IN-list can
# exceed MySQL's range_optimizer_max_mem_size, and MariaDB may rewrite an IN-list of 1,000 values or
# more (in_predicate_conversion_threshold) into a subquery. 999 stays below all of these, and a
# 10,000-key call is still a dozen or so branches of one statement.
DEFAULT_LOOKUP_CHUNK_SIZE = 999
MIN_LOOKUP_CHUNK_SIZE = 1
MAX_LOOKUP_CHUNK_SIZE = 999
ISOLATION_LEVELS = frozenset({"READ COMMITTED", "REPEATABLE READ"})
DEFAULT_MAX_ATTEMPTS = 8
MAX_MAX_ATTEMPTS = 20
DEFAULT_LOCK_WAIT_TIMEOUT_SECONDS = 20

ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213


@dataclass
class MinterStats:
    """What a minter did, for benchmarks, logs and run metadata."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    deadlocks: int = 0
    lock_wait_timeouts: int = 0
    stale_plans: int = 0
    reconnects: int = 0
    lost_races: int = 0
    rereads: int = 0
    minted: int = 0
    inherited: int = 0
    existing: int = 0
    mismatches_recorded: int = 0
    chain_reads: int = 0
    # Free IDs the pool offered that a mapping already used: marked assigned, never handed out.
    pool_ids_in_use: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _StalePlanError(Exception):
    """A key this call planned to mint lost its race while another key planned to inherit from
    it: the plan is stale, so the whole transaction is redone (the lookup now finds the key)."""


def _is_contention(error: BaseException | None) -> bool:
    """Deadlocks, lock-wait timeouts and stale plans: retried up to `max_attempts` times."""
    if isinstance(error, _StalePlanError):
        return True
    if isinstance(error, pymysql.err.OperationalError | pymysql.err.InternalError) and error.args:
        return error.args[0] in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT)
    return False


def _is_retryable(error: BaseException) -> bool:
    """Contention, or an outage (retried for up to the outage bound, on a new connection)."""
    return _is_contention(error) or is_outage(error)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def fetch_mappings(
    conn: Connection,
    keys: list[SourceIdentifier],
    *,
    chunk_size: int = DEFAULT_LOOKUP_CHUNK_SIZE,
    lock: bool = False,
    table: str = "identifiers",
) -> dict[Key, str]:
    """Collation key -> canonical ID, for the keys that exist in `table` (one statement unless
    that would exceed the server's packet limit, `statements.keyed_selects`)."""
    found: dict[Key, str] = {}
    selects = keyed_selects(
        conn, keys, chunk_size=chunk_size, lock=lock, budget=statement_budget(conn), table=table
    )
    for sql, branch_groups in selects:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
        found.update(
            ((*branch_groups[branch], pad_space(source_id)), canonical_id)
            for branch, source_id, canonical_id in rows
        )
    return found


class Minter:
    """Batch lookup and minting over one registry connection (opened lazily, reused).

    Tuning (all optional, clamped): `lookup_chunk_size` (SourceIds per lookup branch),
    `max_attempts` (per call, for deadlocks and lock-wait timeouts), `outage_seconds` (how long
    a call rides out an unreachable registry, reconnecting; None reads
    `IDMINTER_REGISTRY_OUTAGE_SECONDS`, default 60: see `registry.outage`),
    `backoff_seconds` / `max_backoff_seconds` (jittered exponential wait between attempts),
    `lock_wait_timeout_seconds` (session `innodb_lock_wait_timeout`), `always_reread` (do the
    locking re-read even when the insert's affected-row count shows every row is ours),
    `isolation_level` ("READ COMMITTED", the default, or "REPEATABLE READ").
    """

    def __init__(
        self,
        connect: ConnectionFactory,
        *,
        lookup_chunk_size: int = DEFAULT_LOOKUP_CHUNK_SIZE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_seconds: float = 0.02,
        max_backoff_seconds: float = 1.0,
        lock_wait_timeout_seconds: int = DEFAULT_LOCK_WAIT_TIMEOUT_SECONDS,
        always_reread: bool = False,
        isolation_level: str = "READ COMMITTED",
        outage_seconds: float | None = None,
    ) -> None:
        self.outage_seconds = outage_bound(outage_seconds)
        if isolation_level not in ISOLATION_LEVELS:
            raise InvalidInputError(
                f"isolation level {isolation_level!r}: expected one of {sorted(ISOLATION_LEVELS)}"
            )
        self.isolation_level = isolation_level
        self._connect = connect
        self._conn: Connection | None = None
        self.lookup_chunk_size = _clamp(
            lookup_chunk_size, MIN_LOOKUP_CHUNK_SIZE, MAX_LOOKUP_CHUNK_SIZE
        )
        self.max_attempts = _clamp(max_attempts, 1, MAX_MAX_ATTEMPTS)
        self.backoff_seconds = max(0.0, float(backoff_seconds))
        self.max_backoff_seconds = max(self.backoff_seconds, float(max_backoff_seconds))
        self.lock_wait_timeout_seconds = _clamp(lock_wait_timeout_seconds, 1, 3600)
        self.always_reread = bool(always_reread)
        self.stats = MinterStats()
        # Set with the connection: where claims draw from; IDs offered though mapped.
        self.partition: IdPartition = PRODUCTION
        self.pool_ids_in_use: list[str] = []

    # -- connection -------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The minter's connection, opened and set up on first use."""
        if self._conn is None:
            conn = self._connect()
            try:
                with conn.cursor() as cursor:
                    # READ COMMITTED by default: no gap locks on the pool scan and fewer on
                    # inserts, so concurrent minters block each other only on rows they really
                    # share. Correctness does not depend on it (the claim and the re-read are
                    # locking reads); REPEATABLE READ is for servers with STATEMENT binlogs.
                    cursor.execute(
                        "SET SESSION innodb_lock_wait_timeout = %s",
                        (self.lock_wait_timeout_seconds,),
                    )
                    cursor.execute(
                        f"SET SESSION TRANSACTION ISOLATION LEVEL {self.isolation_level}"
                    )
                max_allowed_packet(conn)  # read once per connection: statements fit in it
                require_project_schema(conn)
                # A fork claims only from the fork partition (registry.forks); read once.
                self.partition = registry_partition(conn)
                conn.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.close()
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.Error):
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Minter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken; closing is best effort
                logger.debug("closing a broken connection failed", exc_info=True)

    def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.stats.retries += 1
        if isinstance(error, _StalePlanError):
            self.stats.stale_plans += 1
        elif _is_contention(error):
            assert isinstance(error, pymysql.err.Error)
            if error.args[0] == ER_LOCK_DEADLOCK:
                self.stats.deadlocks += 1
            else:
                self.stats.lock_wait_timeouts += 1
        else:  # the registry is away: the next attempt opens a new connection
            self.stats.reconnects += 1
            self._discard_connection()
        logger.info("retrying registry transaction after %r", error)

    def _transaction(
        self,
        work: Callable[[Connection], T],
        *,
        what: str = "running a registry transaction",
        commit_in_doubt: Callable[[T], None] | None = None,
    ) -> T:
        """Run `work` and commit, redoing the whole transaction on transient failures: up to
        `max_attempts` times for contention, and for up to the outage bound while the registry
        is away. A COMMIT that fails with an outage error may or may not have been applied (its
        acknowledgement was lost): `commit_in_doubt(result)` is told, so the redone transaction
        can recognise its own rows."""
        budget = RetryBudget(
            self.outage_seconds,
            max_attempts=self.max_attempts,
            contention_wait=wait_random_exponential(
                multiplier=self.backoff_seconds, max=self.max_backoff_seconds
            ),
        )
        announce = log_outage_retry(what, self.outage_seconds)

        def before_sleep(state: RetryCallState) -> None:
            announce(state)
            self._before_retry(state)

        retrying = Retrying(
            stop=budget.stop,
            wait=budget.wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.stats.attempts += 1
                    conn = self.connection
                    try:
                        result = work(conn)
                    except BaseException:
                        self._rollback_quietly()
                        raise
                    try:
                        conn.commit()
                    except BaseException as error:
                        if commit_in_doubt is not None and is_outage(error):
                            commit_in_doubt(result)
                        self._rollback_quietly()
                        raise
                    return result
        except Exception as error:
            if is_outage(error):
                raise budget.outage_error(what, error) from error
            if _is_contention(error):
                code = error.args[0] if isinstance(error, pymysql.err.Error) else None
                raise RegistryContentionError(self.max_attempts, code, str(error)) from error
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _rollback_quietly(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except Exception:
            # The connection is gone; the server rolls the transaction back when it notices.
            self._discard_connection()

    # -- lookup -----------------------------------------------------------------------------

    def _fetch_mappings(
        self, conn: Connection, keys: Iterable[SourceIdentifier], *, lock: bool = False
    ) -> dict[Key, str]:
        return fetch_mappings(conn, list(keys), chunk_size=self.lookup_chunk_size, lock=lock)

    def lookup_ids(self, sources: Iterable[SourceIdentifier]) -> dict[SourceIdentifier, str]:
        """The canonical ID of each given source that is registered (one SELECT, one COMMIT)."""
        wanted = _validated_sources(sources)
        if not wanted:
            return {}
        self.stats.calls += 1
        found = self._transaction(
            lambda conn: self._fetch_mappings(conn, wanted),
            what=f"looking up {len(wanted):,} identifier(s)",
        )
        result: dict[SourceIdentifier, str] = {}
        for source in wanted:
            canonical_id = found.get(source_key(source))
            if canonical_id is not None:
                result[source] = canonical_id
        return result

    # -- minting ----------------------------------------------------------------------------

    def mint_ids(
        self, requests: Iterable[MintRequest], *, job_id: str | None = None
    ) -> dict[SourceIdentifier, MintResult]:
        """Look up or mint a canonical ID for every distinct requested source, atomically.

        Raises `ConflictingPredecessorsError` or `PredecessorCycleError` (before touching the
        database), `MissingPredecessorError` or `PoolExhaustedError` (having committed nothing),
        and `RegistryContentionError` if deadlocks persist past `max_attempts`.
        """
        check_job_id(job_id)
        predecessors = fold_requests(requests)
        if not predecessors:
            return {}
        reject_cycles(predecessors)
        self.stats.calls += 1
        in_doubt: dict[SourceIdentifier, MintResult] = {}
        results = self._transaction(
            lambda conn: self._mint(conn, predecessors, job_id, in_doubt),
            what=f"minting {len(predecessors):,} identifier(s)",
            commit_in_doubt=in_doubt.update,
        )
        for result in results.values():
            if result.outcome is MintOutcome.MINTED:
                self.stats.minted += 1
            elif result.outcome is MintOutcome.INHERITED:
                self.stats.inherited += 1
            else:
                self.stats.existing += 1
        return results

    def _mint(
        self,
        conn: Connection,
        predecessors: dict[SourceIdentifier, SourceIdentifier | None],
        job_id: str | None,
        in_doubt: dict[SourceIdentifier, MintResult] | None = None,
    ) -> dict[SourceIdentifier, MintResult]:
        batch = BatchPlan(predecessors)
        batch.found = self._fetch_mappings(
            conn, chain(batch.sources, (p for p in batch.declared if p is not None))
        )
        batch.resolve_existing()
        if in_doubt and batch.committed_by(in_doubt):
            # The previous attempt's COMMIT was applied though its acknowledgement was lost: the
            # registry holds its rows with its IDs. Answer as it did, and write nothing again
            # (its provenance rows are committed too).
            return {source: in_doubt[source] for source in batch.sources}
        batch.check_predecessors_exist()

        roots = batch.new_roots()
        claimed = self._claim_free_ids(conn, len(roots)) if roots else []
        batch.plan(roots, claimed)
        if batch.position:  # successors deeper than a rank orders are refused
            batch.refuse_chains_past_the_limit(registered_depths(conn, batch.anchored_ids()))

        events: list[_Event] = []
        if batch.new:
            actual = self._insert_mappings(conn, batch)
            used_ids = self._settle(batch, actual, events)
            if used_ids:
                self._mark_assigned(conn, sorted(used_ids))
        events.extend(batch.mismatches_of_existing())
        if events:
            self._record_events(conn, events, job_id)
            self.stats.mismatches_recorded += sum(
                1 for event in events if event.kind == "predecessor_mismatch"
            )
        return batch.results()

    def _settle(
        self, batch: BatchPlan, actual: dict[Key, str] | None, events: list[_Event]
    ) -> set[str]:
        """Outcomes and provenance for the inserted keys; the claimed IDs really used.

        A key whose ID is not the planned one was committed by another minter after our lookup:
        its ID stands, and the ID we claimed for it stays free (it is not marked assigned). If
        another key of this call inherits from such a key, the plan is stale: redo the call.

        Provenance describes the committed registry, never this call's plan: a lost key records
        a mismatch only if its committed ID differs from its predecessor's committed ID, and
        the row names the predecessor's real ID. (When another minter committed both a key and
        its predecessor, the ID this call planned for them names nothing and stays free.)
        """
        used_ids: set[str] = set()
        lost: list[int] = []
        existing, minted = MintOutcome.EXISTING, MintOutcome.MINTED
        for i in batch.new:
            planned = batch.ids[i]
            predecessor = batch.declared[i]
            if actual is not None:  # else the insert proved every row is ours
                canonical_id = actual.get(batch.keys[i], "")
                if not canonical_id:
                    raise AssertionError(f"{batch.sources[i]} is missing right after its insert")
                if canonical_id != planned:
                    lost.append(i)
                    batch.ids[i], batch.outcomes[i] = canonical_id, existing
                    if predecessor is not None:
                        predecessor_id = self._committed_id(batch, actual, predecessor)
                        if predecessor_id != canonical_id:
                            events.append(
                                _mismatch(
                                    batch.sources[i], predecessor, canonical_id, predecessor_id
                                )
                            )
                    continue
            if batch.outcomes[i] is minted:
                used_ids.add(planned)
            elif predecessor is not None:
                events.append(_inheritance(batch.sources[i], predecessor, planned, batch.depths[i]))
        if lost:
            self.stats.lost_races += len(lost)
            lost_keys = {batch.keys[i] for i in lost}
            if any(
                (p := batch.declared[i]) is not None and source_key(p) in lost_keys
                for i in batch.new
                if batch.keys[i] not in lost_keys
            ):
                raise _StalePlanError(sorted(batch.keys[i] for i in lost))
        return used_ids

    @staticmethod
    def _committed_id(
        batch: BatchPlan, actual: dict[Key, str], predecessor: SourceIdentifier
    ) -> str | None:
        """The predecessor's ID in the registry as this transaction now sees it: re-read under
        lock if this call inserted it (another minter may have won it), else as looked up."""
        key = source_key(predecessor)
        return actual[key] if key in actual else batch.found.get(key)

    def _claim_free_ids(self, conn: Connection, needed: int) -> list[str]:
        def in_use(canonical_ids: list[str]) -> None:  # offered, yet mapped: never handed out
            self._mark_assigned(conn, sorted(canonical_ids))
            self.stats.pool_ids_in_use += len(canonical_ids)
            self.pool_ids_in_use.extend(canonical_ids)

        return claim_free_ids(conn, needed, self.partition, in_use)

    def _insert_mappings(self, conn: Connection, batch: BatchPlan) -> dict[Key, str] | None:
        """Insert the planned mappings (sorted by key, so concurrent minters lock rows in one
        order) and return the canonical ID each key really has now, or None if the insert
        proved that every key has the planned one."""
        ordered = sorted(batch.new, key=batch.keys.__getitem__)
        inserted = 0
        with conn.cursor() as cursor:
            for sql in insert_mappings_statements(
                conn, batch.keys, batch.ids, ordered, budget=statement_budget(conn)
            ):
                inserted += cursor.execute(sql)
        # Affected rows count 1 per inserted row and 0 per duplicate left unchanged (unless the
        # client asked for found rows). All inserted means no other minter got there first, and
        # every key has our ID: the re-read could only confirm it.
        if (
            inserted == len(ordered)
            and not self.always_reread
            and not conn.client_flag & CLIENT.FOUND_ROWS
        ):
            return None
        # Some keys exist: a locking read sees the latest committed rows (another minter may
        # have inserted them after our lookup, whatever the isolation level).
        self.stats.rereads += 1
        return self._fetch_mappings(conn, [batch.sources[i] for i in ordered], lock=True)

    def _mark_assigned(self, conn: Connection, canonical_ids: list[str]) -> None:
        with conn.cursor() as cursor:
            for sql in mark_assigned_statements(conn, canonical_ids, budget=statement_budget(conn)):
                cursor.execute(sql)

    def _record_events(self, conn: Connection, events: list[_Event], job_id: str | None) -> None:
        with conn.cursor() as cursor:
            for sql, values in record_events_statements(
                events, job_id, budget=statement_budget(conn)
            ):
                cursor.execute(sql, values)

    # -- aliases ----------------------------------------------------------------------------

    def aliases(self, canonical_id: str) -> list[Alias]:
        """Every source identifier mapped to `canonical_id`: the original first, then aliases in
        the order they inherited it (provenance sequence, never timestamps alone)."""
        canonical_id = validate_canonical_id(canonical_id)
        self.stats.calls += 1

        def read(conn: Connection) -> list[tuple[Any, ...]]:
            with conn.cursor() as cursor:
                cursor.execute(ALIASES_SQL, (canonical_id,))
                return list(cursor.fetchall())

        return aliases_from_rows(self._transaction(read, what="reading aliases"))

    # -- succession -------------------------------------------------------------------------

    def inheritances(self, canonical_ids: Iterable[str]) -> list[Inheritance]:
        """The live inheritances under `canonical_ids` (one indexed SELECT per 1,000 IDs, one
        COMMIT): what `works.succession` builds chains from."""
        wanted = list(canonical_ids)
        if not wanted:
            return []
        self.stats.calls += 1
        self.stats.chain_reads += 1
        return self._transaction(
            lambda conn: read_inheritances(conn, wanted),
            what=f"reading the inheritance chains of {len(wanted):,} canonical ID(s)",
        )

    def chained_ids(self, *, after: str = "", limit: int = 500) -> list[str]:
        """The next `limit` canonical IDs after `after` that some work inherited from a work,
        in order."""
        return self._transaction(
            lambda conn: read_chained_ids(conn, after, limit), what="listing inherited IDs"
        )
