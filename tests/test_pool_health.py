"""Pool health figures, the AssignedAt migration (0003) and the sensor's bounded watch query."""

from datetime import UTC, datetime, timedelta

import pytest
from db_helpers import fetch_all
from explain_plans import explain

from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.errors import SchemaMigrationError
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.pool import (
    WATCH_POOL_SQL,
    count_free_up_to,
    pool_health,
    top_up,
    watch_pool,
)
from idminter_pipeline.registry.schema import (
    apply_migrations,
    migration_status,
    rollback_migrations,
)


def _execute(settings, sql: str, params=()) -> int:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            rows = cursor.execute(sql, params)
        conn.commit()
        return rows
    finally:
        conn.close()


def _server_now(settings) -> datetime:
    [(now,)] = fetch_all(settings, "SELECT NOW(6)")
    return now


def _assign(settings, ids: list[str], at: datetime | None) -> None:
    """Insert `ids` as assigned, with AssignedAt set to `at` (None: like a legacy row)."""
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO canonical_ids (CanonicalId, Status, AssignedAt) VALUES (%s, %s, %s)",
                [(value, "assigned", at) for value in ids],
            )
        conn.commit()
    finally:
        conn.close()


def test_assigning_a_free_id_stamps_assigned_at_without_the_minter_knowing(registry):
    top_up(lambda: connect(registry), 3, batch_size=10)
    [(claimed,)] = fetch_all(
        registry, "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' LIMIT 1"
    )
    before = _server_now(registry)
    # Exactly the statement the RFC's minter runs.
    _execute(
        registry, "UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId = %s", (claimed,)
    )
    after = _server_now(registry)
    rows = dict(fetch_all(registry, "SELECT CanonicalId, AssignedAt FROM canonical_ids"))
    assert before <= rows.pop(claimed) <= after
    # The still-free rows stay NULL.
    assert set(rows.values()) == {None}
    # Legacy rows copied in by INSERT as assigned stay NULL too.
    _assign(registry, ["kegacyaa"], None)
    assert fetch_all(
        registry, "SELECT AssignedAt FROM canonical_ids WHERE CanonicalId = 'kegacyaa'"
    ) == [(None,)]


def test_migration_0003_rolls_back_and_reapplies(empty_database):
    factory = lambda: connect(empty_database)  # noqa: E731
    applied = apply_migrations(factory)
    assert "0003_pool_assignment_time" in applied
    # Roll back to just before 0003, whatever later migrations other features add.
    applied_versions = [state.version for state in migration_status(factory) if state.applied]
    rollback_migrations(
        factory, count=len(applied_versions) - applied_versions.index("0003_pool_assignment_time")
    )
    assert not fetch_all(
        empty_database,
        "SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE()"
        " AND table_name = 'canonical_ids' AND column_name = 'AssignedAt'",
    )
    with pytest.raises(SchemaMigrationError, match="0003_pool_assignment_time"):
        pool_health(factory)
    apply_migrations(factory)
    assert all(state.applied for state in migration_status(factory))
    assert pool_health(factory).free == 0


def test_health_counts_rates_and_forecast(registry, connect_registry):
    now = _server_now(registry)
    ids = iter(sorted(set(generate_canonical_ids_bulk(100))))
    take = lambda n: [next(ids) for _ in range(n)]  # noqa: E731
    _assign(registry, take(3), now - timedelta(minutes=30))
    _assign(registry, take(4), now - timedelta(hours=5))
    _assign(registry, take(5), now - timedelta(days=3))
    _assign(registry, take(6), now - timedelta(days=10))
    _assign(registry, take(7), None)  # legacy
    top_up(connect_registry, 60, batch_size=25)

    health = pool_health(connect_registry)
    assert (health.free, health.assigned, health.total) == (60, 25, 85)
    assert (health.minted_last_hour, health.minted_last_day, health.minted_last_week) == (3, 7, 12)
    assert health.assigned_without_time == 7
    assert health.rates_per_hour == {"hour": 3.0, "day": 7 / 24, "week": 12 / 168}
    assert health.forecast_rate_per_hour == 3.0
    assert health.hours_until_empty == pytest.approx(20.0)
    assert health.forecasts()["week"] == pytest.approx(60 / (12 / 168))
    assert health.measured_at.tzinfo is UTC
    assert abs(health.measured_at.replace(tzinfo=None) - now) < timedelta(minutes=1)
    assert health.exhausted_at == health.measured_at + timedelta(hours=20)
    as_dict = health.as_dict()
    assert as_dict["minted"] == {"last_hour": 3, "last_day": 7, "last_week": 12}
    assert as_dict["hours_until_empty"] == pytest.approx(20.0)


def test_health_of_an_idle_pool_has_no_forecast(registry, connect_registry):
    top_up(connect_registry, 5, batch_size=5)
    health = pool_health(connect_registry)
    assert health.free == 5
    assert health.hours_until_empty is None
    assert health.exhausted_at is None


def test_watch_counts_are_bounded_by_their_caps(registry, conn):
    top_up(lambda: connect(registry), 50, batch_size=50)
    now = _server_now(registry)
    ids = sorted(
        set(generate_canonical_ids_bulk(40))
        - {v for (v,) in fetch_all(registry, "SELECT CanonicalId FROM canonical_ids")}
    )
    _assign(registry, ids[:30], now - timedelta(minutes=5))
    _assign(registry, ids[30:35], now - timedelta(hours=2))  # outside the hour

    bounded = watch_pool(conn, free_cap=10, minted_cap=100)
    assert bounded.free == 11  # "more than 10"
    assert not bounded.free_is_exact
    assert bounded.minted_last_hour == 30
    assert bounded.minted_is_exact
    assert bounded.hours_until_empty() is None  # the free count is only a bound

    exact = watch_pool(conn, free_cap=1000, minted_cap=10)
    assert (exact.free, exact.free_is_exact) == (50, True)
    assert (exact.minted_last_hour, exact.minted_is_exact) == (11, False)
    assert count_free_up_to(conn, 20) == 20
    assert count_free_up_to(conn, 500) == 50


def test_the_watch_query_reads_only_the_indexes(registry, conn):
    top_up(lambda: connect(registry), 5_000, batch_size=5_000)
    now = _server_now(registry)
    existing = {v for (v,) in fetch_all(registry, "SELECT CanonicalId FROM canonical_ids")}
    fresh = sorted(set(generate_canonical_ids_bulk(3_000)) - existing)
    _assign(registry, fresh[:1_000], now - timedelta(minutes=10))
    _assign(registry, fresh[1_000:], now - timedelta(days=2))
    _execute(registry, "ANALYZE TABLE canonical_ids")

    plan = explain(conn, WATCH_POOL_SQL, {"free_limit": 1001, "minted_limit": 1001})
    on_table = [step for step in plan if step.table == "canonical_ids"]
    assert len(on_table) == 2, plan
    keys = sorted(step.key for step in on_table)
    assert keys == ["idx_assigned_at", "idx_free"], plan
    # Index-only: no row of the table is read.
    assert all(step.index_only for step in on_table), plan
