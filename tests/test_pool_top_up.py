"""Pool top-ups against the real registry: exact targets, existing IDs, bounds, concurrency."""

import multiprocessing
import re
import threading

import pytest
from db_helpers import clients_running, fetch_all

from idminter_pipeline.core.canonical_ids import (
    ID_SPACE_SIZE,
    generate_canonical_ids_bulk,
    validate_canonical_id,
)
from idminter_pipeline.core.errors import (
    InvalidCanonicalIdError,
    InvalidInputError,
    PoolTopUpBusyError,
    PoolTopUpIncompleteError,
)
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.pool import (
    MAX_BATCH_SIZE,
    MAX_WRITERS,
    clamp_batch_size,
    count_free,
    top_up,
)


def _status_counts(settings) -> dict[str, int]:
    return dict(fetch_all(settings, "SELECT Status, COUNT(*) FROM canonical_ids GROUP BY Status"))


def _insert(settings, rows: list[tuple[str, str]]) -> None:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)", rows
            )
        conn.commit()
    finally:
        conn.close()


def test_bulk_generator_draws_valid_ids_over_many_draws():
    ids = generate_canonical_ids_bulk(200_000)
    assert len(ids) == 200_000
    for value in ids:
        validate_canonical_id(value)
    # 200,000 draws from ~6.0e11 IDs: a handful of collisions at most, and every character
    # position uses its whole alphabet (the first, production's partition: all but z).
    assert len(set(ids)) >= 199_990
    assert {value[0] for value in ids} == set("abcdefghjkmnpqrstuvwxy")
    assert {value[7] for value in ids} == set("abcdefghjkmnpqrstuvwxyz23456789")
    assert ID_SPACE_SIZE == 23 * 31**7
    assert generate_canonical_ids_bulk(0) == []
    with pytest.raises(ValueError, match="-1"):
        generate_canonical_ids_bulk(-1)


def test_top_up_reaches_the_target_exactly(registry, connect_registry):
    report = top_up(connect_registry, 25_000, batch_size=4_000)
    assert report.added == 25_000
    assert report.free_before == 0
    assert report.free_after == 25_000
    assert report.rounds == 1
    assert report.batch_size == 4_000
    assert report.duration_seconds > 0
    assert _status_counts(registry) == {"free": 25_000}
    ids = [value for (value,) in fetch_all(registry, "SELECT CanonicalId FROM canonical_ids")]
    for value in ids:
        validate_canonical_id(value)
    # Free rows carry no assignment time.
    assert fetch_all(registry, "SELECT COUNT(*) FROM canonical_ids WHERE AssignedAt IS NULL") == [
        (25_000,)
    ]

    again = top_up(connect_registry, 25_000, batch_size=4_000)
    assert (again.added, again.rounds, again.free_before) == (0, 0, 25_000)
    topped = top_up(connect_registry, 26_000, batch_size=4_000)
    assert topped.added == 1_000
    assert _status_counts(registry) == {"free": 26_000}


def test_assigned_ids_do_not_count_towards_the_target(registry, connect_registry):
    _insert(registry, [(value, "assigned") for value in generate_canonical_ids_bulk(500)])
    report = top_up(connect_registry, 300, batch_size=100)
    assert report.added == 300
    assert _status_counts(registry) == {"assigned": 500, "free": 300}


def test_existing_ids_are_skipped_and_drawn_again(registry, connect_registry):
    existing_assigned = ["aaaaaaaa", "bbbbbbbb", "kegacy22"]
    existing_free = ["cccccccc"]
    _insert(registry, [(v, "assigned") for v in existing_assigned] + [(existing_free[0], "free")])
    draws = iter([[*existing_assigned, *existing_free, "dddddddd"]])

    def generate(count: int) -> list[str]:
        # First draw: mostly IDs that exist already; later draws: fresh random IDs.
        first = next(draws, None)
        return first[:count] if first is not None else generate_canonical_ids_bulk(count)

    report = top_up(connect_registry, 6, batch_size=100, generate=generate)
    assert report.free_before == 1
    assert report.added == 5
    assert report.duplicates_skipped == 4
    assert report.rounds == 2
    assert _status_counts(registry) == {"assigned": 3, "free": 6}
    # The existing rows are untouched: assigned stays assigned.
    statuses = dict(
        fetch_all(
            registry,
            "SELECT CanonicalId, Status FROM canonical_ids WHERE CanonicalId IN (%s, %s, %s)",
            tuple(existing_assigned),
        )
    )
    assert set(statuses.values()) == {"assigned"}


def test_hitting_the_round_bound_is_a_typed_error_with_the_figures(registry, connect_registry):
    _insert(registry, [("aaaaaaaa", "assigned"), ("bbbbbbbb", "assigned")])

    def only_existing(count: int) -> list[str]:
        return (["aaaaaaaa", "bbbbbbbb"] * count)[:count]

    with pytest.raises(PoolTopUpIncompleteError, match="after 3 rounds at 0 free") as raised:
        top_up(connect_registry, 10, batch_size=5, max_rounds=3, generate=only_existing)
    assert raised.value.target == 10
    assert raised.value.added == 0
    assert raised.value.duplicates == 30
    assert _status_counts(registry) == {"assigned": 2}


def test_ids_outside_the_public_format_are_refused_before_any_insert(registry, connect_registry):
    with pytest.raises(InvalidCanonicalIdError, match=re.escape("x'); DROP")):
        top_up(connect_registry, 2, batch_size=5, generate=lambda n: ["x'); DROP", "aaaaaaaa"])
    assert _status_counts(registry) == {}


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True])
def test_batch_size_must_be_a_positive_integer(bad):
    with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
        clamp_batch_size(bad)


@pytest.mark.parametrize("writers", [1, 3])
def test_any_number_of_writers_reaches_the_target_exactly(registry, connect_registry, writers):
    report = top_up(connect_registry, 12_345, batch_size=1_000, writers=writers)
    assert (report.added, report.writers) == (12_345, writers)
    assert _status_counts(registry) == {"free": 12_345}


def test_writers_are_clamped_and_must_be_positive(registry, connect_registry):
    assert top_up(connect_registry, 10, writers=50).writers == MAX_WRITERS
    with pytest.raises(InvalidInputError, match="writers"):
        top_up(connect_registry, 20, writers=0)
    assert _status_counts(registry) == {"free": 10}


def test_batch_size_is_clamped(registry, connect_registry):
    assert clamp_batch_size(10**9) == MAX_BATCH_SIZE
    report = top_up(connect_registry, 10, batch_size=10**9)
    assert report.batch_size == MAX_BATCH_SIZE
    assert report.added == 10


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"target_free": -1}, "target_free"), ({"target_free": 10, "max_rounds": 0}, "max_rounds")],
)
def test_bad_arguments_are_refused_naming_them(registry, connect_registry, kwargs, named):
    target = kwargs.pop("target_free")
    with pytest.raises(InvalidInputError, match=named):
        top_up(connect_registry, target, **kwargs)
    assert _status_counts(registry) == {}


def test_a_top_up_waits_for_the_lock_and_gives_up_with_a_typed_error(registry, connect_registry):
    holder = connect(registry)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(CONCAT('idminter:pool-top-up:', DATABASE()), 0)")
            assert cursor.fetchone() == (1,)
        with pytest.raises(PoolTopUpBusyError, match="idminter:pool-top-up:"):
            top_up(connect_registry, 10, lock_timeout_seconds=1)
        assert _status_counts(registry) == {}
    finally:
        holder.close()
    # Released with its connection: the next top-up proceeds.
    assert top_up(connect_registry, 10).added == 10


def _top_up_in_process(settings, target, batch_size, start, results):
    start.wait(timeout=60)
    report = top_up(lambda: connect(settings), target, batch_size=batch_size)
    results.put((report.added, report.free_before, report.waited_for_lock_seconds))


def test_two_concurrent_top_ups_neither_deadlock_nor_overshoot(registry):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    target, batch_size = 40_000, 2_000
    workers = [
        ctx.Process(target=_top_up_in_process, args=(registry, target, batch_size, start, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    reports = sorted(results.get(timeout=10) for _ in workers)
    # Serialized by the lock: one added everything, the other waited, re-counted, added nothing.
    assert [added for added, _, _ in reports] == [0, target]
    assert sorted(before for _, before, _ in reports) == [0, target]
    free = _status_counts(registry)["free"]
    assert target <= free <= target + batch_size
    assert free == target


def test_count_free_counts_only_free_ids(registry, conn):
    _insert(registry, [("aaaaaaaa", "free"), ("bbbbbbbb", "free"), ("cccccccc", "assigned")])
    assert count_free(conn) == 2


def _claim_like_the_minter(conn, claimed: list[str]) -> None:
    """RFC 083's claim: SELECT ... FOR UPDATE SKIP LOCKED, UPDATE to assigned, COMMIT."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
            "LIMIT 50 FOR UPDATE SKIP LOCKED"
        )
        ids = [value for (value,) in cursor.fetchall()]
        if ids:
            cursor.execute(
                "UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId IN ("
                + ",".join(["%s"] * len(ids))
                + ")",
                ids,
            )
    conn.commit()
    claimed.extend(ids)


def test_a_top_up_runs_while_minters_claim_free_ids(registry, connect_registry):
    top_up(connect_registry, 5_000, batch_size=1_000)
    claimed: list[str] = []

    def minter(conn):
        _claim_like_the_minter(conn, claimed)

    with clients_running(registry, minter, minter) as errors:
        report = top_up(connect_registry, 60_000, batch_size=2_000)
    assert errors == []
    assert claimed, "the minters claimed nothing while the top-up ran"
    assert len(set(claimed)) == len(claimed)  # no ID claimed twice
    counts = _status_counts(registry)
    assert counts["assigned"] == len(claimed)
    # Everything inserted is accounted for: still free, or claimed.
    assert counts["free"] + counts["assigned"] == 5_000 + report.added
    assert report.added == 60_000 - report.free_before


def test_a_batch_chosen_as_deadlock_victim_is_retried(registry, connect_registry):
    first_key, second_key = "aaaaaaa2", "zzzzzzz2"
    filler = sorted(set(generate_canonical_ids_bulk(200)) - {first_key, second_key})
    other = connect(registry)
    errors: list[Exception] = []

    def other_transaction():
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT SLEEP(1)")  # the top-up is now waiting on second_key
                cursor.execute("INSERT INTO canonical_ids (CanonicalId) VALUES (%s)", (first_key,))
            other.commit()
        except Exception as error:
            errors.append(error)
            other.rollback()

    worker = threading.Thread(target=other_transaction)
    try:
        with other.cursor() as cursor:
            # Many rows first, so InnoDB picks the top-up's smaller transaction as the victim.
            cursor.executemany(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, %s)",
                [(value, "assigned") for value in filler],
            )
            cursor.execute("INSERT INTO canonical_ids (CanonicalId) VALUES (%s)", (second_key,))
        worker.start()
        draws = iter([[first_key, second_key]])
        # One writer, so one statement holds first_key and waits for second_key.
        report = top_up(
            connect_registry,
            2,
            batch_size=10,
            writers=1,
            generate=lambda n: next(draws, None) or generate_canonical_ids_bulk(n),
        )
    finally:
        if worker.is_alive() or worker.ident is not None:
            worker.join(timeout=60)
        other.rollback()
        other.close()
    assert errors == []  # the other transaction was not the victim: it committed
    assert _status_counts(registry) == {"assigned": len(filler), "free": 4}
    # The retried batch found both keys taken by the other transaction, so they were redrawn.
    assert report.added == 2
    assert report.duplicates_skipped == 2
    assert report.rounds == 2
