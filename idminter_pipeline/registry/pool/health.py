"""The free-ID pool's health: exact counts, mint rates, the exhaustion forecast and a cheap watch.

- `pool_health` reports free/assigned/total counts, mint rates over the last hour, day and week
  (from `AssignedAt`, migration 0003) and when the pool runs out at those rates.
- `watch_pool` is the sensor's one statement: two bounded, index-only counts.
- `count_free` counts exactly (for runs); `count_free_up_to` stops at a cap (for sensors).

Reads only: `top_up` fills the pool, and the `idminter_pipeline.registry.pool` package
re-exports these names.
Nothing here knows about Dagster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pymysql

from idminter_pipeline.core.errors import InvalidInputError, SchemaMigrationError
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.outage import ride_out
from idminter_pipeline.registry.schema import DriftKind, require_project_schema

_COUNT_FREE = "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'"
# Bounded: the derived table stops after `cap` index entries of idx_free, whatever the pool size.
_COUNT_FREE_UP_TO = (
    "SELECT COUNT(*) FROM (SELECT 1 FROM canonical_ids WHERE Status = 'free' LIMIT %s) AS f"
)
WATCH_POOL_SQL = (
    "SELECT"
    " (SELECT COUNT(*) FROM"
    "   (SELECT 1 FROM canonical_ids WHERE Status = 'free' LIMIT %(free_limit)s) AS f),"
    " (SELECT COUNT(*) FROM"
    "   (SELECT 1 FROM canonical_ids"
    "    WHERE AssignedAt >= NOW(6) - INTERVAL 1 HOUR AND Status = 'assigned'"
    "    LIMIT %(minted_limit)s) AS a)"
)

_ER_NO_SUCH_TABLE = 1146
_ER_BAD_FIELD = 1054
_HOURS_PER_WINDOW = {"hour": 1, "day": 24, "week": 24 * 7}


def _require_count(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def count_free(conn: Connection) -> int:
    """Exact number of free IDs (an index-only scan of idx_free: for runs, not sensors)."""
    with conn.cursor() as cursor:
        cursor.execute(_COUNT_FREE)
        (free,) = cursor.fetchone()
    return int(free)


def count_free_up_to(conn: Connection, cap: int) -> int:
    """min(free IDs, cap), reading at most `cap` entries of idx_free: cheap enough for sensors."""
    _require_count("cap", cap)
    with conn.cursor() as cursor:
        cursor.execute(_COUNT_FREE_UP_TO, (cap,))
        (free,) = cursor.fetchone()
    return int(free)


@dataclass(frozen=True)
class PoolHealth:
    """Counts, mint rates and the exhaustion forecast, measured at `measured_at` (server UTC)."""

    measured_at: datetime
    free: int
    assigned: int
    minted_last_hour: int
    minted_last_day: int
    minted_last_week: int
    # Legacy and pre-0003 assignments have no AssignedAt: they count as assigned, not as rates.
    assigned_without_time: int = 0
    rates_per_hour: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        minted = {
            "hour": self.minted_last_hour,
            "day": self.minted_last_day,
            "week": self.minted_last_week,
        }
        object.__setattr__(
            self,
            "rates_per_hour",
            {window: minted[window] / hours for window, hours in _HOURS_PER_WINDOW.items()},
        )

    @property
    def total(self) -> int:
        return self.free + self.assigned

    @property
    def forecast_rate_per_hour(self) -> float:
        """The busiest of the three windows: a forecast for alerts should err on the early side."""
        return max(self.rates_per_hour.values())

    def hours_until_empty_at(self, rate_per_hour: float) -> float | None:
        return self.free / rate_per_hour if rate_per_hour > 0 else None

    @property
    def hours_until_empty(self) -> float | None:
        return self.hours_until_empty_at(self.forecast_rate_per_hour)

    @property
    def exhausted_at(self) -> datetime | None:
        hours = self.hours_until_empty
        return self.measured_at + timedelta(hours=hours) if hours is not None else None

    def forecasts(self) -> dict[str, float | None]:
        """Hours until the pool is empty at each window's rate."""
        return {w: self.hours_until_empty_at(r) for w, r in self.rates_per_hour.items()}

    def as_dict(self) -> dict[str, object]:
        return {
            "measured_at": self.measured_at,
            "free": self.free,
            "assigned": self.assigned,
            "total": self.total,
            "assigned_without_time": self.assigned_without_time,
            "minted": {
                "last_hour": self.minted_last_hour,
                "last_day": self.minted_last_day,
                "last_week": self.minted_last_week,
            },
            "rates_per_hour": dict(self.rates_per_hour),
            "forecast_rate_per_hour": self.forecast_rate_per_hour,
            "hours_until_empty": self.hours_until_empty,
            "exhausted_at": self.exhausted_at,
            "hours_until_empty_by_window": self.forecasts(),
        }


@contextlib.contextmanager
def _schema_named() -> Iterator[None]:
    """A missing table or column of the pool is a `SchemaMigrationError` saying which migration
    to apply; any other server error goes on as it is."""
    try:
        yield
    except pymysql.err.MySQLError as error:
        code = error.args[0] if error.args else None
        if code == _ER_NO_SUCH_TABLE:
            raise SchemaMigrationError(
                "the registry has no canonical_ids table: run `idminter db migrate`"
            ) from error
        if code == _ER_BAD_FIELD:
            raise SchemaMigrationError(
                "canonical_ids has no AssignedAt column (migration 0003_pool_assignment_time): "
                "run `idminter db migrate`"
            ) from error
        raise


def pool_health(connect: ConnectionFactory, *, outage_seconds: float | None = None) -> PoolHealth:
    """Full figures: counts by index-only scans, rates by a range scan of idx_assigned_at.

    Rides out an unreachable registry for up to `outage_seconds` (None:
    `IDMINTER_REGISTRY_OUTAGE_SECONDS`, default 60), then raises `RegistryOutageError`. The
    sensor's `watch_pool` does not: a tick stays one cheap statement and fails fast.
    """
    return ride_out(
        lambda: _pool_health_once(connect), what="reading pool health", bound_seconds=outage_seconds
    )


def _pool_health_once(connect: ConnectionFactory) -> PoolHealth:
    conn = connect()
    try:
        # A schema not applied yet, or without AssignedAt, is named below.
        require_project_schema(conn, allow=(DriftKind.NOT_APPLIED, DriftKind.PENDING))
        with _schema_named(), conn.cursor() as cursor:
            cursor.execute("SELECT NOW(6)")
            (now,) = cursor.fetchone()
            cursor.execute("SELECT Status, COUNT(*) FROM canonical_ids GROUP BY Status")
            counts = {status: int(n) for status, n in cursor.fetchall()}
            cursor.execute(
                "SELECT COUNT(*), COALESCE(SUM(AssignedAt >= %(day)s), 0),"
                " COALESCE(SUM(AssignedAt >= %(hour)s), 0)"
                " FROM canonical_ids WHERE AssignedAt >= %(week)s AND Status = 'assigned'",
                {
                    "week": now - timedelta(days=7),
                    "day": now - timedelta(days=1),
                    "hour": now - timedelta(hours=1),
                },
            )
            week, day, hour = (int(n) for n in cursor.fetchone())
            cursor.execute(
                "SELECT COUNT(*) FROM canonical_ids"
                " WHERE AssignedAt IS NULL AND Status = 'assigned'"
            )
            (untimed,) = cursor.fetchone()
        with _schema_named():
            conn.commit()
    finally:
        with contextlib.suppress(pymysql.err.Error):
            conn.close()
    return PoolHealth(
        measured_at=now.replace(tzinfo=UTC),
        free=counts.get("free", 0),
        assigned=counts.get("assigned", 0),
        minted_last_hour=hour,
        minted_last_day=day,
        minted_last_week=week,
        assigned_without_time=int(untimed),
    )


@dataclass(frozen=True)
class PoolWatch:
    """What one sensor tick learns. Counts stop at their caps: beyond, they are lower bounds."""

    free: int
    free_cap: int
    minted_last_hour: int
    minted_cap: int

    @property
    def free_is_exact(self) -> bool:
        return self.free <= self.free_cap

    @property
    def minted_is_exact(self) -> bool:
        return self.minted_last_hour <= self.minted_cap

    def hours_until_empty(self) -> float | None:
        """At the last hour's rate; None if nothing was minted or the free count is a bound."""
        if self.minted_last_hour == 0 or not self.free_is_exact:
            return None
        return self.free / self.minted_last_hour


def watch_pool(conn: Connection, *, free_cap: int, minted_cap: int) -> PoolWatch:
    """One statement, two bounded index-only counts (idx_free and idx_assigned_at).

    Each count reads at most cap + 1 index entries, so a count above its cap means "more than
    cap": enough to decide, and the cost stays flat however large the pool grows.
    """
    _require_count("free_cap", free_cap)
    _require_count("minted_cap", minted_cap)
    with _schema_named():
        with conn.cursor() as cursor:
            cursor.execute(
                WATCH_POOL_SQL, {"free_limit": free_cap + 1, "minted_limit": minted_cap + 1}
            )
            free, minted = cursor.fetchone()
        conn.commit()
    return PoolWatch(int(free), free_cap, int(minted), minted_cap)
