"""The free-ID pool (RFC 083, "ID pre-generation"): top-ups, health figures and a cheap watch.

Minting claims pre-generated free IDs from `canonical_ids`; it never generates IDs on the hot
path. This module keeps that pool filled; `health` measures it and `watch` judges the sensor's
reading. Callers import the pool's whole API from the package, `idminter_pipeline.registry.pool`:

- `top_up` inserts random IDs with multi-row `INSERT IGNORE` until the pool holds the target
  number of free IDs. IDs that already exist (assigned, free or legacy) are skipped by the primary
  key and drawn again in the next round, up to `max_rounds`. A named lock (`GET_LOCK`, on MySQL
  8 and MariaDB alike) serializes top-ups of one registry, so two at once neither deadlock nor
  overshoot: the second waits, re-counts and adds only what is still missing.
- `pool_health` reports free/assigned/total counts, mint rates over the last hour, day and week
  (from `AssignedAt`, migration 0003) and when the pool runs out at those rates.
- `watch_pool` is the sensor's one statement: two bounded, index-only counts.

Nothing here knows about Dagster.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import pymysql
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from idminter_pipeline.core.canonical_ids import (
    CANONICAL_ID_LENGTH,
    generate_canonical_ids_bulk,
    is_canonical_id,
    validate_canonical_id,
)
from idminter_pipeline.core.errors import (
    InvalidInputError,
    InvalidPoolSettingsError,
    PoolTopUpBusyError,
    PoolTopUpIncompleteError,
)
from idminter_pipeline.core.limits import (
    POOL_DEFAULT_BATCH_SIZE,
    POOL_DEFAULT_MAX_ROUNDS,
    POOL_DEFAULT_WRITERS,
    POOL_MAX_BATCH_SIZE,
    POOL_MAX_WRITERS,
    bounded_batch_size,
)
from idminter_pipeline.core.settings import environment
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.forks import registry_partition
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.registry.packets import rows_per_statement
from idminter_pipeline.registry.pool.health import (
    _require_count,
    count_free,
)
from idminter_pipeline.registry.schema import DriftKind, require_project_schema

# Batch sizes and writers: registry.limits says why these values (the CLI reads them there).
DEFAULT_BATCH_SIZE = POOL_DEFAULT_BATCH_SIZE
MAX_BATCH_SIZE = POOL_MAX_BATCH_SIZE
DEFAULT_MAX_ROUNDS = POOL_DEFAULT_MAX_ROUNDS
# IDs drawn and sorted at once (about 35 MB of strings at most per chunk, two chunks alive).
SORT_CHUNK = 500_000
DEFAULT_WRITERS = POOL_DEFAULT_WRITERS
MAX_WRITERS = POOL_MAX_WRITERS
DEFAULT_LOCK_TIMEOUT_SECONDS = 600
# MySQL refuses user lock names longer than 64 characters.
_LOCK_NAME_MAX = 64

_INSERT_FREE_IDS_PREFIX = "INSERT IGNORE INTO canonical_ids (CanonicalId) VALUES ('"
# Each ID adds itself and "'),('" to the statement.
_INSERT_BYTES_PER_ID = CANONICAL_ID_LENGTH + len("'),('")

# Deadlock victim, lock wait timeout: possible while minters lock free IDs (FOR UPDATE).
_TRANSIENT_LOCK_ERRORS = frozenset({1213, 1205})
# Attempts per insert batch for those (docs/design/pool.md); then the error propagates.
INSERT_MAX_ATTEMPTS = 5


def clamp_batch_size(batch_size: int) -> int:
    """Batch sizes above `MAX_BATCH_SIZE` are lowered to it; below 1 they are refused."""
    return bounded_batch_size(batch_size, maximum=MAX_BATCH_SIZE)


def _lock_name(conn: Connection) -> str:
    with conn.cursor() as cursor:
        cursor.execute("SELECT DATABASE()")
        (database,) = cursor.fetchone()
    name = f"idminter:pool-top-up:{database}"
    if len(name) > _LOCK_NAME_MAX:
        name = "idminter:pool-top-up:" + hashlib.sha256(database.encode()).hexdigest()[:40]
    return name


# ---------------------------------------------------------------------------------------------
# Top-up


@dataclass(frozen=True)
class TopUpReport:
    target_free: int
    free_before: int
    free_after: int
    added: int
    rounds: int
    duplicates_skipped: int
    batch_size: int
    duration_seconds: float
    waited_for_lock_seconds: float
    writers: int = 1

    @property
    def ids_per_second(self) -> float:
        return self.added / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ids_per_second": self.ids_per_second}

    def summary(self) -> str:
        return (
            f"added {self.added:,} free IDs in {self.duration_seconds:.2f}s "
            f"({self.ids_per_second:,.0f} IDs/s): free {self.free_before:,} -> "
            f"{self.free_after:,} (target {self.target_free:,}); {self.rounds} round(s), "
            f"{self.duplicates_skipped:,} draw(s) skipped as existing IDs"
        )


def _is_transient_lock_error(error: BaseException) -> bool:
    return (
        isinstance(error, pymysql.err.OperationalError)
        and bool(error.args)
        and error.args[0] in _TRANSIENT_LOCK_ERRORS
    )


def _rollback_before_retry(state: RetryCallState) -> None:
    # InnoDB has rolled the statement's transaction back already; make the connection agree.
    conn = state.args[0]
    conn.rollback()


# A deadlock victim's whole transaction (one batch) was rolled back, so running the same
# INSERT IGNORE again is safe: rows another transaction added meanwhile are skipped.
@retry(
    retry=retry_if_exception(_is_transient_lock_error),
    stop=stop_after_attempt(INSERT_MAX_ATTEMPTS),
    wait=wait_exponential_jitter(multiplier=0.05, max=2),
    before_sleep=_rollback_before_retry,
    reraise=True,
)
def _insert_batch(conn: Connection, ids: list[str]) -> int:
    """Insert distinct IDs as free; returns how many were new (the rest already existed)."""
    # The statement is spelled out rather than escaped value by value (pymysql's executemany
    # spends more time escaping than the server spends inserting); that is safe only because
    # `_fill` checked every ID against the public format, whose alphabet needs no quoting.
    # Sorted keys land in neighbouring B-tree pages, which InnoDB inserts noticeably faster.
    ids.sort()
    with conn.cursor() as cursor:
        cursor.execute(_INSERT_FREE_IDS_PREFIX + "'),('".join(ids) + "')")
        inserted = cursor.rowcount
    conn.commit()
    return int(inserted)


def _insert_range(conn: Connection, ids: list[str], batch_size: int) -> int:
    """Insert sorted `ids` batch by batch, in key order; returns how many were new. A batch is
    at most what fits the server's `max_allowed_packet` (`registry.packets`)."""
    fitting = rows_per_statement(
        conn, row_bytes=_INSERT_BYTES_PER_ID, fixed=len(_INSERT_FREE_IDS_PREFIX) + 2
    )
    size = min(batch_size, fitting)
    return sum(_insert_batch(conn, ids[i : i + size]) for i in range(0, len(ids), size))


def _fill(
    writer_conns: list[Connection],
    missing: int,
    *,
    batch_size: int,
    max_rounds: int,
    generate: Callable[[int], list[str]],
) -> tuple[int, int, int]:
    """Insert up to `missing` new IDs in at most `max_rounds`: (added, duplicates, rounds).

    IDs are drawn in large chunks and sorted; each chunk is split into one contiguous key range
    per writer connection, and each writer inserts its range batch by batch in key order. Each
    batch then lands in a narrow range of the B-trees instead of touching pages all over them
    (about twice the insert rate at a million IDs), writers never insert into the same key range
    at once, and this thread draws the next chunk while the writers insert the current one.
    """
    added = duplicates = rounds = 0
    writers = len(writer_conns)
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="pool-insert") as executor:
        while missing > 0 and rounds < max_rounds:
            rounds += 1
            to_draw = missing
            running: list[tuple[int, Future[int]]] = []
            while to_draw > 0 or running:
                chunk: list[str] = []
                if to_draw > 0:
                    drawn = generate(min(SORT_CHUNK, to_draw))
                    if not drawn:
                        raise RuntimeError("the ID generator returned no IDs")
                    to_draw -= len(drawn)
                    chunk = sorted(set(drawn))
                    bad = [value for value in chunk if not is_canonical_id(value)]
                    if bad:
                        validate_canonical_id(bad[0])  # raises, naming the value
                    duplicates += len(drawn) - len(chunk)
                # The previous chunk finishes before this one starts: no two writers ever share
                # a key range, and at most two chunks are in memory.
                for count, future in running:
                    inserted = future.result()
                    added += inserted
                    duplicates += count - inserted
                    missing -= inserted
                running = []
                step = -(-len(chunk) // writers)  # ceiling division
                for n, writer in enumerate(writer_conns):
                    part = chunk[n * step : (n + 1) * step]
                    if part:
                        running.append(
                            (len(part), executor.submit(_insert_range, writer, part, batch_size))
                        )
    return added, duplicates, rounds


def top_up(
    connect: ConnectionFactory,
    target_free: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    lock_timeout_seconds: int = DEFAULT_LOCK_TIMEOUT_SECONDS,
    writers: int = DEFAULT_WRITERS,
    generate: Callable[[int], list[str]] | None = None,
    outage_seconds: float | None = None,
) -> TopUpReport:
    """Add free IDs until the pool holds `target_free` of them.

    Each round draws the whole remaining deficit in batches of `batch_size` (clamped to
    `MAX_BATCH_SIZE`), one committed multi-row `INSERT IGNORE` per batch. Draws that hit an
    existing ID are skipped and drawn again next round; after `max_rounds` rounds with IDs still
    missing, `PoolTopUpIncompleteError` says how far it got (what was added stays added).
    Top-ups of one registry run one at a time under a named lock; a top-up that waits longer
    than `lock_timeout_seconds` raises `PoolTopUpBusyError`. `writers` connections insert at
    once (clamped to 1..`MAX_WRITERS`). New IDs are drawn from the registry's partition of the
    ID space (a fork's own, `registry.forks`); `generate` replaces the draw, for tests.

    While the registry is unreachable the top-up is redone on new connections for up to
    `outage_seconds` (None: `IDMINTER_REGISTRY_OUTAGE_SECONDS`, default 60), then
    `RegistryOutageError`: safe, since it re-counts the pool under its lock and adds only what
    is missing (batches committed before the outage stay). The report is the completed
    attempt's.
    """
    _require_count("target_free", target_free)
    _require_count("max_rounds", max_rounds, minimum=1)
    _require_count("lock_timeout_seconds", lock_timeout_seconds)
    batch_size = clamp_batch_size(batch_size)
    writers = min(_require_count("writers", writers, minimum=1), MAX_WRITERS)
    return ride_out(
        lambda: _top_up_once(
            connect,
            target_free,
            batch_size=batch_size,
            max_rounds=max_rounds,
            lock_timeout_seconds=lock_timeout_seconds,
            writers=writers,
            generate=generate,
        ),
        what=f"topping the pool up to {target_free:,} free IDs",
        bound_seconds=outage_seconds,
    )


def _top_up_once(
    connect: ConnectionFactory,
    target_free: int,
    *,
    batch_size: int,
    max_rounds: int,
    lock_timeout_seconds: int,
    writers: int,
    generate: Callable[[int], list[str]] | None,
) -> TopUpReport:
    conn = connect()
    extra_writers: list[Connection] = []
    try:
        require_project_schema(conn, allow=(DriftKind.NOT_APPLIED,))
        if generate is None:
            partition = registry_partition(conn)
            conn.commit()  # no read snapshot may outlive this: the count below must be fresh
            generate = functools.partial(generate_canonical_ids_bulk, partition=partition)
        lock = _lock_name(conn)
        waited = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, lock_timeout_seconds))
            (acquired,) = cursor.fetchone()
        waited = time.perf_counter() - waited
        if acquired != 1:
            raise PoolTopUpBusyError(lock, waited)
        try:
            started = time.perf_counter()
            # Counted under the lock, so a top-up that waited sees what the other one added.
            free_before = count_free(conn)
            conn.commit()  # end the read snapshot
            extra_writers += [connect() for _ in range(writers - 1)]
            added, duplicates, rounds = _fill(
                [conn, *extra_writers],
                target_free - free_before,
                batch_size=batch_size,
                max_rounds=max_rounds,
                generate=generate,
            )
            missing = max(0, target_free - free_before - added)
            free_after = count_free(conn)
            conn.commit()
            if missing > 0:
                raise PoolTopUpIncompleteError(
                    target_free, free_before + added, rounds, added, duplicates
                )
            return TopUpReport(
                target_free=target_free,
                free_before=free_before,
                free_after=free_after,
                added=added,
                rounds=rounds,
                duplicates_skipped=duplicates,
                batch_size=batch_size,
                duration_seconds=time.perf_counter() - started,
                waited_for_lock_seconds=waited,
                writers=writers,
            )
        finally:
            # On a broken connection the server has released the lock with the session.
            with contextlib.suppress(pymysql.err.Error), conn.cursor() as cursor:
                cursor.execute("DO RELEASE_LOCK(%s)", (lock,))
    finally:
        for writer in [*extra_writers, conn]:
            with contextlib.suppress(pymysql.err.Error):
                writer.close()


# ---------------------------------------------------------------------------------------------
# Settings


POOL_ENV = {
    "target_free": "IDMINTER_POOL_TARGET_FREE",
    "low_watermark": "IDMINTER_POOL_LOW_WATERMARK",
    "critical_watermark": "IDMINTER_POOL_CRITICAL_WATERMARK",
    "batch_size": "IDMINTER_POOL_BATCH_SIZE",
    "max_rounds": "IDMINTER_POOL_MAX_ROUNDS",
    "forecast_horizon_hours": "IDMINTER_POOL_FORECAST_HORIZON_HOURS",
}


@dataclass(frozen=True)
class PoolSettings:
    """How full the pool is kept and when people hear about it. See docs/design/pool.md."""

    target_free: int = 1_000_000
    low_watermark: int = 250_000
    critical_watermark: int = 50_000
    batch_size: int = DEFAULT_BATCH_SIZE
    max_rounds: int = DEFAULT_MAX_ROUNDS
    forecast_horizon_hours: float = 24.0

    def __post_init__(self) -> None:
        for name in ("target_free", "low_watermark", "critical_watermark", "max_rounds"):
            value = getattr(self, name)
            minimum = 1 if name == "max_rounds" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InvalidPoolSettingsError(name, value, f"must be an integer >= {minimum}")
        if not self.critical_watermark <= self.low_watermark:
            raise InvalidPoolSettingsError(
                "critical_watermark",
                self.critical_watermark,
                f"must not exceed low_watermark ({self.low_watermark})",
            )
        if not self.low_watermark < self.target_free:
            raise InvalidPoolSettingsError(
                "low_watermark",
                self.low_watermark,
                f"must be below target_free ({self.target_free}), or every top-up would end "
                "below the low watermark",
            )
        try:
            clamp_batch_size(self.batch_size)
        except InvalidInputError as error:
            raise InvalidPoolSettingsError("batch_size", self.batch_size, str(error)) from None
        horizon = self.forecast_horizon_hours
        if not isinstance(horizon, int | float) or not math.isfinite(horizon) or horizon < 0:
            raise InvalidPoolSettingsError(
                "forecast_horizon_hours", horizon, "must be a finite number >= 0"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PoolSettings:
        env = environment(environ)
        values: dict[str, object] = {}
        for name, variable in POOL_ENV.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[name] = float(raw) if name == "forecast_horizon_hours" else int(raw)
            except ValueError:
                raise InvalidPoolSettingsError(
                    variable, raw, "is not a number" if name.endswith("hours") else "not an integer"
                ) from None
        return cls(**values)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def replenish(
    connect: ConnectionFactory, settings: PoolSettings, *, outage_seconds: float | None = None
) -> TopUpReport:
    """Top the pool up as the settings say (for the replenishment asset and recovery sensors)."""
    return top_up(
        connect,
        settings.target_free,
        batch_size=settings.batch_size,
        max_rounds=settings.max_rounds,
        outage_seconds=outage_seconds,
    )
