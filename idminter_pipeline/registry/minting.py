"""Batch lookup and batch minting of canonical IDs (RFC 083, "ID Minter logic").

One `mint_ids` call is one transaction of at most 7 SQL statements, whatever the batch size
(README, "Minting"); steps with nothing to do are skipped:

1. lookup of every requested source and declared predecessor (one `UNION ALL` statement);
2. claim of free IDs (`SELECT ... FOR UPDATE SKIP LOCKED LIMIT n`), if something needs a new ID;
3. one multi-row idempotent insert (`ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId`);
4. a locking re-read of the inserted keys, which sees rows other minters committed meanwhile,
   when the insert's affected-row count shows that some key already existed;
5. `UPDATE canonical_ids` marking assigned only the claimed IDs that ended up used;
6. one multi-row insert into `identifier_provenance` (inheritances and predecessor mismatches);
7. `COMMIT`.

Every statement that touches many rows lists them sorted, so concurrent minters take row locks in
the same order; deadlocks and lock-wait timeouts that still happen are retried for the whole
transaction with bounded, jittered backoff (tenacity), and counted in `Minter.stats`.

A `Minter` holds one connection and is not thread-safe: give each thread or process its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import chain, islice
from typing import Any, TypeVar

import pymysql
from pymysql.constants import CLIENT, SERVER_STATUS
from pymysql.converters import escape_string
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from idminter_pipeline.canonical_ids import validate_canonical_id
from idminter_pipeline.errors import (
    ConflictingPredecessorsError,
    InvalidInputError,
    MissingPredecessorError,
    PoolExhaustedError,
    PredecessorCycleError,
    RegistryContentionError,
)
from idminter_pipeline.job_ids import check_job_id
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.source_identifiers import SourceIdentifier

logger = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str, str]

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
_CONNECTION_LOST = frozenset({2006, 2013, 2014, 2055})


def pad_space(value: str) -> str:
    """A value as the registry's collation compares it: trailing U+0020 spaces do not count.

    The key columns are `utf8mb4_bin`, which compares by code point but is PAD SPACE on MySQL 8.0
    and MariaDB 10.11: a legacy row `'b1 '` *is* the row a request for `'b1'` finds (and the one
    an insert of `'b1'` collides with). Matching server rows back to requests with plain string
    equality would drop such a request; any looser fold (case, other whitespace, Unicode
    normalization) would answer a request with another source's ID. This is the one place that
    rule lives: strip trailing spaces, nothing else.
    """
    return value.rstrip(" ")


def collation_key(ontology_type: str, source_system: str, source_id: str) -> Key:
    """The key under which the registry considers a stored source identifier equal to another."""
    return (pad_space(ontology_type), pad_space(source_system), pad_space(source_id))


def _key(source: SourceIdentifier) -> Key:
    """A requested source's collation key. `SourceIdentifier` refuses leading and trailing
    whitespace, so its parts are already what `collation_key` would return."""
    return (source.ontology_type, source.source_system, source.source_id)


@dataclass(frozen=True)
class MintRequest:
    """Mint (or look up) `source`; if it is new, inherit the canonical ID of `predecessor`."""

    source: SourceIdentifier
    predecessor: SourceIdentifier | None = None


class MintOutcome(StrEnum):
    EXISTING = "existing"
    INHERITED = "inherited"
    MINTED = "minted"


@dataclass(frozen=True)
class MintResult:
    source: SourceIdentifier
    canonical_id: str
    outcome: MintOutcome


class AliasStatus(StrEnum):
    ORIGINAL = "original"
    ALIAS = "alias"


@dataclass(frozen=True)
class Alias:
    """One source identifier mapped to a canonical ID, as `Minter.aliases` reports it.

    The parts are exactly as stored (a legacy row may carry trailing spaces), so `source` is the
    string form rather than a validated `SourceIdentifier`.
    """

    ontology_type: str
    source_system: str
    source_id: str
    status: AliasStatus
    created_at: datetime
    inherited_from: str | None = None
    provenance_seq: int | None = None
    job_id: str | None = None

    @property
    def source(self) -> str:
        return f"{self.ontology_type}[{self.source_system}/{self.source_id}]"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": str(self.status),
            "created_at": self.created_at,
            "inherited_from": self.inherited_from,
            "provenance_seq": self.provenance_seq,
            "job_id": self.job_id,
        }


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

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _StalePlanError(Exception):
    """A key this call planned to mint lost its race while another key planned to inherit from
    it: the plan is stale, so the whole transaction is redone (the lookup now finds the key)."""


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, _StalePlanError):
        return True
    if isinstance(error, pymysql.err.OperationalError | pymysql.err.InternalError) and error.args:
        return error.args[0] in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, *_CONNECTION_LOST)
    return isinstance(error, pymysql.err.InterfaceError)


def _string_escaper(conn: Connection) -> Callable[[str], str]:
    """pymysql's escaping of a `str` for this connection's current mode (what
    `Connection.escape` does for strings), for building large IN-lists without its dispatch."""
    if conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return lambda value: value.replace("'", "''")
    return escape_string


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _event_key(kind: str, successor: SourceIdentifier, predecessor: SourceIdentifier) -> bytes:
    # Unit and record separators cannot occur in a source identifier (control characters are
    # refused), so the encoding is unambiguous.
    text = "\x1e".join([kind, "\x1f".join(successor.as_key()), "\x1f".join(predecessor.as_key())])
    return hashlib.sha256(text.encode("utf-8")).digest()


_MISMATCH_ORDER = 1 << 30  # after every inheritance, so Seq lists a call's inheritances first


@dataclass(frozen=True)
class _Event:
    """A row for `identifier_provenance`."""

    kind: str
    successor: SourceIdentifier
    predecessor: SourceIdentifier
    canonical_id: str
    predecessor_canonical_id: str | None
    order: int

    @property
    def key(self) -> bytes:
        return _event_key(self.kind, self.successor, self.predecessor)


def _inheritance(
    source: SourceIdentifier, predecessor: SourceIdentifier, canonical_id: str, depth: int
) -> _Event:
    return _Event("inherited", source, predecessor, canonical_id, canonical_id, depth)


def _mismatch(
    source: SourceIdentifier,
    predecessor: SourceIdentifier,
    canonical_id: str,
    predecessor_id: str | None,
) -> _Event:
    return _Event(
        "predecessor_mismatch", source, predecessor, canonical_id, predecessor_id, _MISMATCH_ORDER
    )


class _Batch:
    """One mint attempt's requests by position, and every decision that needs no SQL.

    Positions and plain key tuples rather than `SourceIdentifier` dict keys: hashing a dataclass
    runs Python code, and a 10,000-key call would do it a dozen times per key.
    """

    def __init__(self, predecessors: dict[SourceIdentifier, SourceIdentifier | None]) -> None:
        self.sources = list(predecessors)
        self.declared = list(predecessors.values())
        self.keys = [(s.ontology_type, s.source_system, s.source_id) for s in self.sources]
        self.found: dict[Key, str] = {}
        count = len(self.sources)
        self.ids: list[str | None] = [None] * count
        self.outcomes: list[MintOutcome] = [MintOutcome.EXISTING] * count
        self.depths: list[int] = [0] * count
        self.new: list[int] = []
        self.new_set: set[int] = set()
        self.position: dict[Key, int] = (
            {key: i for i, key in enumerate(self.keys)}
            if any(p is not None for p in self.declared)
            else {}
        )

    def resolve_existing(self) -> None:
        get = self.found.get
        self.ids = [get(key) for key in self.keys]
        self.new = [i for i, canonical_id in enumerate(self.ids) if canonical_id is None]
        self.new_set = set(self.new)

    def check_predecessors_exist(self) -> None:
        missing = sorted(
            (
                (self.sources[i], predecessor)
                for i in self.new
                if (predecessor := self.declared[i]) is not None
                and _key(predecessor) not in self.found
                and _key(predecessor) not in self.position
            ),
            key=lambda pair: (_key(pair[0]), _key(pair[1])),
        )
        if missing:
            raise MissingPredecessorError(missing)

    def new_roots(self) -> list[int]:
        roots = [i for i in self.new if self.declared[i] is None]
        roots.sort(key=self.keys.__getitem__)
        return roots

    def plan(self, roots: list[int], claimed: list[str]) -> None:
        """Give every new source the ID it is to be inserted with. New roots take the claimed
        IDs in key order; every other new source takes the ID at the end of its predecessor
        chain (registered, or a new root), which is iterative because a chain may be as long
        as the batch. Cycles were refused before the transaction began."""
        for i, canonical_id in zip(roots, claimed, strict=True):
            self.ids[i], self.outcomes[i] = canonical_id, MintOutcome.MINTED
        inherited = MintOutcome.INHERITED
        for i in self.new:
            if self.ids[i] is not None:
                continue
            chain_: list[int] = []
            current: int | None = i
            canonical_id: str | None = None
            depth = 0
            while current is not None:
                if self.ids[current] is not None:
                    canonical_id, depth = self.ids[current], self.depths[current]
                    break
                chain_.append(current)
                predecessor = self.declared[current]
                assert predecessor is not None, "a new source without predecessor is a root"
                key = _key(predecessor)
                current = self.position.get(key)
                if current is None:
                    canonical_id = self.found[key]
                    break
            assert canonical_id is not None
            for node in reversed(chain_):
                depth += 1
                self.ids[node], self.outcomes[node], self.depths[node] = (
                    canonical_id,
                    inherited,
                    depth,
                )

    def mismatches_of_existing(self) -> list[_Event]:
        """Registered sources whose declared predecessor has another ID (or none): recorded."""
        events = []
        for i, predecessor in enumerate(self.declared):
            if predecessor is None or i in self.new_set:
                continue  # new sources' mismatches (lost races) are recorded when settling
            key = _key(predecessor)
            j = self.position.get(key)
            predecessor_id = self.ids[j] if j is not None else self.found.get(key)
            if predecessor_id != self.ids[i]:
                events.append(_mismatch(self.sources[i], predecessor, self.ids[i], predecessor_id))
        return events

    def results(self) -> dict[SourceIdentifier, MintResult]:
        return {
            source: MintResult(source, canonical_id, outcome)
            for source, canonical_id, outcome in zip(
                self.sources, self.ids, self.outcomes, strict=True
            )
        }


class Minter:
    """Batch lookup and minting over one registry connection (opened lazily, reused).

    Tuning (all optional, clamped): `lookup_chunk_size` (SourceIds per lookup branch),
    `max_attempts` (per call, for deadlocks, lock-wait timeouts and lost connections),
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
    ) -> None:
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

    # -- connection -------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The minter's connection, opened and set up on first use."""
        if self._conn is None:
            conn = self._connect()
            with conn.cursor() as cursor:
                # READ COMMITTED by default: no gap locks on the pool scan and fewer on inserts,
                # so concurrent minters block each other only on rows they really share.
                # Correctness does not depend on it (the claim and the re-read are locking
                # reads); REPEATABLE READ is there for servers that log binlogs as STATEMENT.
                cursor.execute(
                    "SET SESSION innodb_lock_wait_timeout = %s", (self.lock_wait_timeout_seconds,)
                )
                cursor.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {self.isolation_level}")
            conn.commit()
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
        elif isinstance(error, pymysql.err.Error) and error.args:
            code = error.args[0]
            if code == ER_LOCK_DEADLOCK:
                self.stats.deadlocks += 1
            elif code == ER_LOCK_WAIT_TIMEOUT:
                self.stats.lock_wait_timeouts += 1
            else:
                self.stats.reconnects += 1
                self._discard_connection()
        else:
            self.stats.reconnects += 1
            self._discard_connection()
        logger.info("retrying registry transaction after %r", error)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` and commit, redoing the whole transaction on transient failures."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(
                multiplier=self.backoff_seconds, max=self.max_backoff_seconds
            ),
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.stats.attempts += 1
                    conn = self.connection
                    try:
                        result = work(conn)
                        conn.commit()
                    except BaseException:
                        self._rollback_quietly()
                        raise
                    return result
        except (pymysql.err.OperationalError, pymysql.err.InternalError, _StalePlanError) as error:
            if _is_retryable(error):
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

    def _keyed_select(
        self, conn: Connection, keys: Iterable[SourceIdentifier], *, lock: bool
    ) -> tuple[str, list[tuple[str, str]]]:
        """One statement: per (OntologyType, SourceSystem) group, chunks of SourceId IN-lists.

        Each branch fixes the first two primary-key columns and lists values of the third, so
        every branch is a range scan of PRIMARY (a row-constructor IN over thousands of tuples
        can fall off the index on MySQL). A branch returns its number instead of the two fixed
        columns: less to send and to decode, and the group is known from the request. Values
        are escaped exactly as pymysql's parameter binding escapes strings (`_string_escaper`),
        without its per-value type dispatch (a measurable cost at 10,000 keys).
        """
        groups: dict[tuple[str, str], set[str]] = defaultdict(set)
        for key in keys:
            groups[(key.ontology_type, key.source_system)].add(key.source_id)
        escape = _string_escaper(conn)
        branches: list[str] = []
        branch_groups: list[tuple[str, str]] = []
        suffix = " LOCK IN SHARE MODE" if lock else ""
        for group in sorted(groups):
            where = (
                "SourceId, CanonicalId FROM identifiers WHERE "
                f"OntologyType = '{escape(group[0])}' AND SourceSystem = '{escape(group[1])}' "
                "AND SourceId IN ('"
            )
            for chunk in _chunks(sorted(groups[group]), self.lookup_chunk_size):
                values = "','".join([escape(value) for value in chunk])
                branches.append(f"(SELECT {len(branch_groups)} AS g, {where}{values}'){suffix})")
                branch_groups.append(group)
        return " UNION ALL ".join(branches), branch_groups

    def _fetch_mappings(
        self, conn: Connection, keys: Iterable[SourceIdentifier], *, lock: bool = False
    ) -> dict[Key, str]:
        """Collation key -> canonical ID, for the keys that exist."""
        sql, branch_groups = self._keyed_select(conn, keys, lock=lock)
        if not branch_groups:
            return {}
        with conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall()
        return {
            (*branch_groups[branch], pad_space(source_id)): canonical_id
            for branch, source_id, canonical_id in rows
        }

    def lookup_ids(self, sources: Iterable[SourceIdentifier]) -> dict[SourceIdentifier, str]:
        """The canonical ID of each given source that is registered (one SELECT, one COMMIT)."""
        wanted = _validated_sources(sources)
        if not wanted:
            return {}
        self.stats.calls += 1
        found = self._transaction(lambda conn: self._fetch_mappings(conn, wanted))
        result: dict[SourceIdentifier, str] = {}
        for source in wanted:
            canonical_id = found.get(_key(source))
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
        results = self._transaction(lambda conn: self._mint(conn, predecessors, job_id))
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
    ) -> dict[SourceIdentifier, MintResult]:
        batch = _Batch(predecessors)
        batch.found = self._fetch_mappings(
            conn, chain(batch.sources, (p for p in batch.declared if p is not None))
        )
        batch.resolve_existing()
        batch.check_predecessors_exist()

        roots = batch.new_roots()
        claimed = self._claim_free_ids(conn, len(roots)) if roots else []
        batch.plan(roots, claimed)

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
        self, batch: _Batch, actual: dict[Key, str] | None, events: list[_Event]
    ) -> set[str]:
        """Outcomes and provenance for the inserted keys; the claimed IDs really used.

        A key whose ID is not the planned one was committed by another minter after our lookup:
        its ID stands, and the ID we claimed for it stays free (it is not marked assigned). If
        another key of this call inherits from such a key, the plan is stale: redo the call.
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
                        events.append(
                            _mismatch(batch.sources[i], predecessor, canonical_id, planned)
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
                (p := batch.declared[i]) is not None and _key(p) in lost_keys
                for i in batch.new
                if batch.keys[i] not in lost_keys
            ):
                raise _StalePlanError(sorted(batch.keys[i] for i in lost))
        return used_ids

    def _claim_free_ids(self, conn: Connection, needed: int) -> list[str]:
        with conn.cursor() as cursor:
            # Deterministic order (idx_free is (Status, CanonicalId)); SKIP LOCKED makes
            # concurrent minters take different IDs without waiting for each other.
            cursor.execute(
                "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
                "ORDER BY Status, CanonicalId LIMIT %s FOR UPDATE SKIP LOCKED",
                (needed,),
            )
            claimed = [row[0] for row in cursor.fetchall()]
        if len(claimed) < needed:
            raise PoolExhaustedError(needed, len(claimed))
        return claimed

    def _insert_mappings(self, conn: Connection, batch: _Batch) -> dict[Key, str] | None:
        """Insert the planned mappings (sorted by key, so concurrent minters lock rows in one
        order) and return the canonical ID each key really has now, or None if the insert
        proved that every key has the planned one."""
        keys, ids = batch.keys, batch.ids
        ordered = sorted(batch.new, key=keys.__getitem__)
        escape = _string_escaper(conn)
        # A batch has a handful of (OntologyType, SourceSystem) pairs: escape each once.
        groups: dict[tuple[str, str], str] = {}
        for i in ordered:
            pair = keys[i][:2]
            if pair not in groups:
                groups[pair] = f"('{escape(pair[0])}','{escape(pair[1])}','"
        rows = ",".join(
            [
                f"{groups[keys[i][:2]]}{escape(keys[i][2])}','{escape(ids[i] or '')}')"
                for i in ordered
            ]
        )
        with conn.cursor() as cursor:
            inserted = cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                f"VALUES {rows} ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId"
            )
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
        escape = _string_escaper(conn)
        listed = "','".join([escape(canonical_id) for canonical_id in canonical_ids])
        with conn.cursor() as cursor:
            cursor.execute(
                f"UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId IN ('{listed}')"
            )

    def _record_events(self, conn: Connection, events: list[_Event], job_id: str | None) -> None:
        # Chain order (an inheritance before the one that builds on it) gives Seq its meaning;
        # the event key breaks ties so concurrent writers lock unique-key entries in one order.
        events.sort(key=lambda event: (event.order, event.key))
        values: list[Any] = []
        for event in events:
            values.extend(
                (
                    event.key,
                    event.kind,
                    *event.successor.as_key(),
                    *event.predecessor.as_key(),
                    event.canonical_id,
                    event.predecessor_canonical_id,
                    job_id,
                    job_id,
                )
            )
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO identifier_provenance (EventKey, Kind, SuccessorOntologyType, "
                "SuccessorSourceSystem, SuccessorSourceId, PredecessorOntologyType, "
                "PredecessorSourceSystem, PredecessorSourceId, CanonicalId, "
                "PredecessorCanonicalId, JobId, LastJobId) VALUES "
                + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * len(events))
                + " ON DUPLICATE KEY UPDATE SeenCount = SeenCount + 1, "
                "LastSeenAt = CURRENT_TIMESTAMP(6), LastJobId = VALUES(LastJobId), "
                "PredecessorCanonicalId = VALUES(PredecessorCanonicalId)",
                values,
            )

    # -- aliases ----------------------------------------------------------------------------

    def aliases(self, canonical_id: str) -> list[Alias]:
        """Every source identifier mapped to `canonical_id`: the original first, then aliases in
        the order they inherited it (provenance sequence, never timestamps alone)."""
        canonical_id = validate_canonical_id(canonical_id)
        self.stats.calls += 1

        def read(conn: Connection) -> list[tuple[Any, ...]]:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT i.OntologyType, i.SourceSystem, i.SourceId, i.CreatedAt, p.Seq, "
                    "p.PredecessorOntologyType, p.PredecessorSourceSystem, "
                    "p.PredecessorSourceId, p.JobId "
                    "FROM identifiers i LEFT JOIN identifier_provenance p "
                    "ON p.CanonicalId = i.CanonicalId AND p.Kind = 'inherited' "
                    "AND p.SuccessorOntologyType = i.OntologyType "
                    "AND p.SuccessorSourceSystem = i.SourceSystem "
                    "AND p.SuccessorSourceId = i.SourceId "
                    "WHERE i.CanonicalId = %s",
                    (canonical_id,),
                )
                return list(cursor.fetchall())

        rows = self._transaction(read)
        # One row per mapping (the provenance event key is unique per successor and
        # predecessor, and a successor inherits once); keep the earliest event if not.
        by_key: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        for row in rows:
            key = (row[0], row[1], row[2])
            if key not in by_key or (row[4] is not None and (by_key[key][4] or 0) > row[4]):
                by_key[key] = row
        inherited = [row for row in by_key.values() if row[4] is not None]
        uninherited = sorted(
            (row for row in by_key.values() if row[4] is None), key=lambda r: (r[3], r[:3])
        )
        aliases: list[Alias] = []
        # Without a provenance record (rows minted before it existed, or legacy rows), the RFC's
        # rule applies: the earliest row is the original.
        for index, row in enumerate(uninherited):
            aliases.append(
                Alias(
                    row[0],
                    row[1],
                    row[2],
                    AliasStatus.ORIGINAL if index == 0 else AliasStatus.ALIAS,
                    row[3],
                )
            )
        for row in sorted(inherited, key=lambda r: r[4]):
            aliases.append(
                Alias(
                    row[0],
                    row[1],
                    row[2],
                    AliasStatus.ALIAS,
                    row[3],
                    inherited_from=f"{row[5]}[{row[6]}/{row[7]}]",
                    provenance_seq=row[4],
                    job_id=row[8],
                )
            )
        return aliases


def _validated_sources(sources: Iterable[SourceIdentifier]) -> list[SourceIdentifier]:
    if isinstance(sources, str | bytes):
        raise InvalidInputError(f"expected source identifiers, got the string {sources!r}")
    unique: dict[SourceIdentifier, None] = {}
    for source in sources:
        if not isinstance(source, SourceIdentifier):
            raise InvalidInputError(
                f"expected a SourceIdentifier, got {type(source).__name__} {source!r}"
            )
        unique[source] = None
    return list(unique)


def fold_requests(
    requests: Iterable[MintRequest],
) -> dict[SourceIdentifier, SourceIdentifier | None]:
    """Distinct sources (in first-seen order) and their declared predecessor.

    A source requested twice with the same predecessor, or once with and once without one, is
    one request; two different predecessors for one source are refused.
    """
    if isinstance(requests, MintRequest):
        raise InvalidInputError("expected an iterable of MintRequest, got a single MintRequest")
    if isinstance(requests, str | bytes):
        raise InvalidInputError(f"expected an iterable of MintRequest, got {requests!r}")
    folded: dict[SourceIdentifier, SourceIdentifier | None] = {}
    conflicts: dict[SourceIdentifier, list[SourceIdentifier]] = {}
    for request in requests:
        if not isinstance(request, MintRequest):
            raise InvalidInputError(
                f"expected a MintRequest, got {type(request).__name__} {request!r}"
            )
        source, predecessor = request.source, request.predecessor
        if not isinstance(source, SourceIdentifier):
            raise InvalidInputError(f"MintRequest.source must be a SourceIdentifier: {source!r}")
        if predecessor is not None and not isinstance(predecessor, SourceIdentifier):
            raise InvalidInputError(
                f"MintRequest.predecessor of {source} must be a SourceIdentifier or None: "
                f"{predecessor!r}"
            )
        previous = folded.setdefault(source, predecessor)
        if previous is None:
            if predecessor is not None:
                folded[source] = predecessor
        elif predecessor is not None and predecessor != previous:
            conflicts.setdefault(source, [previous])
            if predecessor not in conflicts[source]:
                conflicts[source].append(predecessor)
    if conflicts:
        source = min(conflicts)
        raise ConflictingPredecessorsError(source, conflicts[source])
    return folded


def reject_cycles(predecessors: dict[SourceIdentifier, SourceIdentifier | None]) -> None:
    """Raise `PredecessorCycleError` naming the loop if declarations loop (self included)."""
    done: set[SourceIdentifier] = set()
    declaring = [source for source, predecessor in predecessors.items() if predecessor is not None]
    for start in sorted(declaring, key=_key):
        path: list[SourceIdentifier] = []
        on_path: dict[SourceIdentifier, int] = {}
        current: SourceIdentifier | None = start
        while current is not None and current not in done:
            if current in on_path:
                raise PredecessorCycleError(path[on_path[current] :])
            on_path[current] = len(path)
            path.append(current)
            current = predecessors.get(current)
        done.update(path)
