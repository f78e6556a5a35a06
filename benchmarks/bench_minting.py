"""Minting engine benchmark: the reference minter's workloads, and a bare-SELECT lookup floor.

Workloads (the public reference minter's own, RFC 083 notebook sizes):
  all-new        1,000 works x 6 identifiers, 500 works per transaction, every identifier new
  all-existing   the same 6,000 identifiers, every one registered
  mixed          50% new works, 40% existing, 10% whose work identifier inherits from a
                 registered predecessor (its 5 merge candidates are registered)
  wide-works     200 works x 51 identifiers, one transaction, every identifier new
Reference minter on this machine (2-core, MariaDB 10.11 loopback): ~383, 177, 349, 503 ms.

Each figure is the median wall time of `repeats` runs; every run uses fresh keys for what must
be new, and the pool is filled before the clock starts. Statements are counted by the server
(`Questions` on the minter's session), not by the client.

Floors: each workload also runs through `_bare_mint`, a script that sends only the statements
RFC minting cannot do without (lookup, claim, insert, mark assigned, commit) with no validation,
provenance or race handling, once on this project's schema and once on the RFC's own "Proposed
schema" (latin1, no pool timestamps). Runs of the minter and of both floors alternate, so the
machine's noise falls on all three. A target below the RFC-schema floor cannot be met by any
minter that runs the RFC's statements on this server.

Run alone: `.venv/bin/python -m benchmarks.bench_minting [--quick]`.

Comparisons (`--compare-guards`, `--compare-guard-bodies`, `--compare-claim-order`, `--pairs N`):
what one part of the minter costs, measured in one process on one scratch registry. Each pair
runs every workload once on each side, the side that goes first alternating from pair to pair,
so the machine's noise and the registry's growth fall on both. Sides:
  guards       the registry's invariant triggers in place, against them dropped; both done by
               the guard migration's own `apply` and `rollback` (sql/0008_registry_invariant_
               triggers.py), so the guarded side is exactly what a migrated registry runs
               (and, alone, the UPDATE marking 10,000 IDs assigned: every row fires a guard)
  guard bodies the pool's update guard as migration 0011 makes it (one condition, no declared
               variable), against the body its rollback puts back (declaring two variables);
               both by that migration's `apply` and `rollback`, every other guard in place
  claim order  the claim from a random point with its probe for a mapping (registry/minting/
               claims.py), against a minter whose claim takes the pool's free IDs in index order
               from the first, without a probe (`SORTED_CLAIM_SQL`)
Reported per workload: the median of each side, their ratio, the median of the per-pair ratios,
and the statements per run of each side (counted by the server; equal on both sides unless a
claim wrapped around the partition's end, which takes one more `SELECT`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pymysql
from pymysql.converters import escape_string

from benchmarks.minting_workload import fill_pool
from benchmarks.support import (
    create_bench_database,
    drop_bench_database,
    figure_row,
    figures_table,
    machine_line,
)
from idminter_pipeline.core.errors import PoolExhaustedError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.local_servers.mariadb import local_admin_connection_for
from idminter_pipeline.registry.connection import Connection, connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.minting.statements import mark_assigned_statements
from idminter_pipeline.registry.packets import statement_budget
from idminter_pipeline.registry.schema import migrations_dir

BENCHMARK = "minting"
WORKS_PER_TRANSACTION = 500
REFERENCE_MS = {"all-new": 383.0, "all-existing": 177.0, "mixed": 349.0, "wide-works": 503.0}
TARGET_FRACTION = {"all-new": 1 / 3, "all-existing": 1 / 2, "mixed": 1 / 3, "wide-works": 1 / 3}
MERGE_SYSTEMS = ("miro-image-number", "mets", "calm-record-id", "wellcome-digcode", "isbn")
# RFC 083, "Proposed schema", verbatim but for IF NOT EXISTS.
RFC_SCHEMA = (
    "CREATE TABLE canonical_ids (CanonicalId varchar(8) NOT NULL PRIMARY KEY, "
    "Status ENUM('free', 'assigned') NOT NULL DEFAULT 'free', "
    "CreatedAt TIMESTAMP DEFAULT CURRENT_TIMESTAMP, INDEX idx_free (Status, CanonicalId)) "
    "ENGINE=InnoDB DEFAULT CHARSET=latin1",
    "CREATE TABLE identifiers (OntologyType varchar(255) NOT NULL, "
    "SourceSystem varchar(255) NOT NULL, SourceId varchar(255) NOT NULL, "
    "CanonicalId varchar(8) NOT NULL, CreatedAt TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
    "PRIMARY KEY (OntologyType, SourceSystem, SourceId), "
    "FOREIGN KEY (CanonicalId) REFERENCES canonical_ids (CanonicalId), "
    "INDEX idx_canonical (CanonicalId)) ENGINE=InnoDB DEFAULT CHARSET=latin1",
)
Register = Callable[[list[list[SourceIdentifier]]], None]


def _work(prefix: str, i: int, width: int) -> list[SourceIdentifier]:
    """A work's own identifier followed by `width - 1` merge candidates of mixed types."""
    ids = [SourceIdentifier("Work", "axiell-collections-id", f"{prefix}-{i}")]
    for j in range(width - 1):
        system = MERGE_SYSTEMS[j % len(MERGE_SYSTEMS)]
        ontology = "Image" if system == "miro-image-number" else "Work"
        ids.append(SourceIdentifier(ontology, system, f"{prefix}-{i}-{j}"))
    return ids


def _create_database(settings: DatabaseSettings, *, rfc_schema: bool = False) -> DatabaseSettings:
    if not rfc_schema:
        return create_bench_database(settings, "minting")
    bench = create_bench_database(settings, "minting_rfc", migrate=False, charset="latin1")
    conn = connect(bench)
    try:
        with conn.cursor() as cursor:
            for statement in RFC_SCHEMA:
                cursor.execute(statement)
    finally:
        conn.close()
    return bench


def _quiesce(conn: Connection | None, *, below: int = 1_000, timeout: float = 30.0) -> None:
    """Wait until InnoDB has purged the undo history of earlier runs (or `timeout` passes).

    A run that starts while the server still purges 10,000 updated rows of the previous one
    pays for them; waiting makes every run start from the same state, whichever ran before.
    Reading the purge backlog needs PROCESS: without a connection that has it (`conn` None), the
    runs do not wait, and the report says so.
    """
    if conn is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT `count` FROM information_schema.INNODB_METRICS "
                "WHERE name = 'trx_rseg_history_len'"
            )
            row = cursor.fetchone()
        conn.commit()
        if row is None or int(row[0]) < below:
            return
        time.sleep(0.05)


def _purge_watch(settings: DatabaseSettings) -> Connection | None:
    """A connection that may read the purge backlog, or None (the application user may not)."""
    conn = local_admin_connection_for(settings) or connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.INNODB_METRICS")
    except pymysql.err.OperationalError:
        conn.close()
        return None
    return conn


def _questions(conn: Connection) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cursor.fetchone()[1])


def _in_transactions(works: list[list[SourceIdentifier]]) -> Iterator[list[MintRequest]]:
    for start in range(0, len(works), WORKS_PER_TRANSACTION):
        yield [
            MintRequest(s) for work in works[start : start + WORKS_PER_TRANSACTION] for s in work
        ]


def _bare_mint(conn: Connection, requests: list[MintRequest]) -> None:
    """The floor of one RFC minting transaction: only the statements it cannot do without,
    each as cheap as pymysql allows, and no validation, provenance or race handling."""
    wanted = {r.source for r in requests} | {r.predecessor for r in requests if r.predecessor}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in wanted:
        groups[(key.ontology_type, key.source_system)].append(key.source_id)
    branches = []
    for (ontology, system), values in sorted(groups.items()):
        values.sort()
        for start in range(0, len(values), 999):
            listed = "','".join(escape_string(v) for v in values[start : start + 999])
            branches.append(
                f"(SELECT '{ontology}', '{system}', SourceId, CanonicalId FROM identifiers WHERE "
                f"OntologyType = '{ontology}' AND SourceSystem = '{system}' "
                f"AND SourceId IN ('{listed}'))"
            )
    with conn.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches))
        found = {(o, s, v): canonical_id for o, s, v, canonical_id in cursor.fetchall()}
        new = sorted(
            (r for r in requests if r.source.as_key() not in found), key=lambda r: r.source.as_key()
        )
        roots = sum(1 for r in new if r.predecessor is None)
        claimed: list[str] = []
        if roots:
            cursor.execute(
                "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
                "ORDER BY Status, CanonicalId LIMIT %s FOR UPDATE SKIP LOCKED",
                (roots,),
            )
            claimed = [row[0] for row in cursor.fetchall()]
        if new:
            free = iter(claimed)
            rows = ",".join(
                "('{}','{}','{}','{}')".format(
                    *r.source.as_key()[:2],
                    escape_string(r.source.source_id),
                    found[r.predecessor.as_key()] if r.predecessor else next(free),
                )
                for r in new
            )
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                f"VALUES {rows} ON DUPLICATE KEY UPDATE CanonicalId = CanonicalId"
            )
        if claimed:
            listed = "','".join(sorted(claimed))
            cursor.execute(
                f"UPDATE canonical_ids SET Status = 'assigned' WHERE CanonicalId IN ('{listed}')"
            )
    conn.commit()


class _Workload:
    def __init__(self, name: str, works: int, width: int, detail: str) -> None:
        self.name, self.works, self.width, self.detail = name, works, width, detail

    def batches(self, register: Register, run: int) -> list[list[MintRequest]]:
        """Requests per transaction for one run, with `register` done for what must exist."""
        prefix = f"{self.name}-{run}"
        if self.name == "all-existing":
            works = [_work("existing", i, self.width) for i in range(self.works)]
            if run == 0:
                register(works)
            requests = [[MintRequest(s) for s in work] for work in works]
        elif self.name == "mixed":
            requests = []
            existing = [_work(f"{prefix}-old", i, self.width) for i in range(self.works // 2)]
            register(existing)
            for i in range(self.works):
                kind = i % 10
                if kind < 5:  # new
                    requests.append([MintRequest(s) for s in _work(prefix, i, self.width)])
                elif kind < 9:  # existing
                    requests.append([MintRequest(s) for s in existing[i // 2]])
                else:  # the work's identifier inherits; its merge candidates are registered
                    old = existing[i // 2]
                    heir = SourceIdentifier("Work", "folio-instance-id", f"{prefix}-{i}")
                    requests.append([MintRequest(heir, old[0])] + [MintRequest(s) for s in old[1:]])
        else:
            requests = [
                [MintRequest(s) for s in _work(prefix, i, self.width)] for i in range(self.works)
            ]
        return [
            [r for work in requests[start : start + WORKS_PER_TRANSACTION] for r in work]
            for start in range(0, len(requests), WORKS_PER_TRANSACTION)
        ]


WORKLOADS = (
    _Workload("all-new", 1000, 6, "1,000 works x 6 ids, 500 works/txn, all new"),
    _Workload("all-existing", 1000, 6, "1,000 works x 6 ids, 500 works/txn, all registered"),
    _Workload("mixed", 1000, 6, "1,000 works x 6 ids, 500 works/txn, 50/40/10 new/existing/heir"),
    _Workload("wide-works", 200, 51, "200 works x 51 ids, one txn, all new"),
)


def _bare_lookup(conn: Connection, keys: list[SourceIdentifier]) -> int:
    """The floor: only the SELECTs the all-existing workload needs, straight through pymysql."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in keys:
        groups[(key.ontology_type, key.source_system)].append(key.source_id)
    parts, params = [], []
    for (ontology, system), values in groups.items():
        parts.append(
            "SELECT SourceId, CanonicalId FROM identifiers WHERE OntologyType = %s AND "
            "SourceSystem = %s AND SourceId IN (" + ",".join(["%s"] * len(values)) + ")"
        )
        params.extend((ontology, system, *values))
    with conn.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    conn.commit()
    return len(rows)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _time_floor(
    settings: DatabaseSettings,
    conn: Connection,
    workload: _Workload,
    run_number: int,
    watch: Connection | None,
) -> float:
    """One untimed preparation and one timed run of `workload` through `_bare_mint`."""
    fill_pool(settings, 11_000)
    batches = workload.batches(
        lambda works: [_bare_mint(conn, b) for b in _in_transactions(works)], run_number
    )
    _quiesce(watch)
    return _timed(lambda: [_bare_mint(conn, b) for b in batches])


def _lookup_figures(setup: Connection, minter: Minter, repeats: int) -> list[dict]:
    """`Minter.lookup_ids` against the bare SELECTs of the all-existing workload."""
    keys = [s for i in range(1000) for s in _work("existing", i, 6)]
    chunks = [keys[i : i + 3000] for i in range(0, len(keys), 3000)]
    floor, ours = [], []
    for _ in range(repeats + 1):
        floor.append(_timed(lambda: [_bare_lookup(setup, c) for c in chunks]))
        ours.append(_timed(lambda: [minter.lookup_ids(c) for c in chunks]))
    floor_ms, ours_ms = _median_ms(floor[1:]), _median_ms(ours[1:])
    return [
        {
            "benchmark": BENCHMARK,
            "figure": "lookup floor (bare SELECTs)",
            "value": floor_ms,
            "unit": "ms",
            "detail": "all-existing workload's SELECTs through bare pymysql",
        },
        {
            "benchmark": BENCHMARK,
            "figure": "lookup_ids vs floor",
            "value": round(100 * ours_ms / floor_ms, 1),
            "unit": "%",
            "detail": f"Minter.lookup_ids {ours_ms} ms for the same 6,000 keys",
        },
        {
            "benchmark": BENCHMARK,
            "figure": "retries during benchmark",
            "value": float(minter.stats.retries),
            "unit": "retries",
            "detail": f"deadlocks {minter.stats.deadlocks}, "
            f"lock-wait timeouts {minter.stats.lock_wait_timeouts}",
        },
    ]


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict]:
    repeats = 3 if quick else 9
    bench = _create_database(settings)
    floor_ours = _create_database(settings)
    floor_rfc = _create_database(settings, rfc_schema=True)
    figures: list[dict] = []
    try:
        setup = connect(bench)
        watch = _purge_watch(bench)
        minter = Minter(lambda: connect(bench))
        floors = {"this project's schema": floor_ours, "RFC schema": floor_rfc}
        floor_conns = {name: connect(database) for name, database in floors.items()}
        try:
            for workload in WORKLOADS:
                samples, statements, identifiers = [], 0, 0
                floor_samples: dict[str, list[float]] = {name: [] for name in floors}
                for run_number in range(repeats + 1):  # run 0 warms up and is not counted
                    fill_pool(bench, 11_000)  # untimed: more than any run needs
                    batches = workload.batches(
                        lambda works: [minter.mint_ids(b) for b in _in_transactions(works)],
                        run_number,
                    )
                    _quiesce(watch)
                    before = _questions(minter.connection)
                    elapsed = _timed(lambda b=batches: [minter.mint_ids(x) for x in b])
                    used = _questions(minter.connection) - before - 1
                    if run_number:
                        samples.append(elapsed)
                        statements = used
                        identifiers = sum(len(b) for b in batches)
                    for name, database in floors.items():
                        elapsed = _time_floor(
                            database, floor_conns[name], workload, run_number, watch
                        )
                        if run_number:
                            floor_samples[name].append(elapsed)
                median = _median_ms(samples)
                reference = REFERENCE_MS[workload.name]
                target = reference * TARGET_FRACTION[workload.name]
                verdict = "meets" if median <= target else "misses"
                figures += [
                    {
                        "benchmark": BENCHMARK,
                        "figure": f"{workload.name} median",
                        "value": median,
                        "unit": "ms",
                        "detail": f"{workload.detail}; reference {reference:.0f} ms, "
                        f"target {target:.0f} ms ({verdict}); {repeats} runs"
                        + ("" if watch else "; runs did not wait for InnoDB purge (no PROCESS)"),
                    },
                    {
                        "benchmark": BENCHMARK,
                        "figure": f"{workload.name} statements",
                        "value": float(statements),
                        "unit": "statements/run",
                        "detail": f"{len(batches)} transaction(s), counted by the server",
                    },
                    {
                        "benchmark": BENCHMARK,
                        "figure": f"{workload.name} throughput",
                        "value": float(round(identifiers / (median / 1000))),
                        "unit": "identifiers/s",
                        "detail": f"{identifiers} identifiers per run",
                    },
                ]
                for name, floor in floor_samples.items():
                    floor_ms = _median_ms(floor)
                    side = "below" if target < floor_ms else "above"
                    figures.append(
                        {
                            "benchmark": BENCHMARK,
                            "figure": f"{workload.name} floor, {name}",
                            "value": floor_ms,
                            "unit": "ms",
                            "detail": f"bare lookup/claim/insert/mark/commit; the minter takes "
                            f"{100 * median / floor_ms:.0f} % of it; target {target:.0f} ms is "
                            f"{side} it",
                        }
                    )

            figures += _lookup_figures(setup, minter, repeats)
        finally:
            minter.close()
            setup.close()
            if watch is not None:
                watch.close()
            for conn in floor_conns.values():
                conn.close()
    finally:
        for database in (bench, floor_ours, floor_rfc):
            drop_bench_database(database)
    return figures


GUARD_MIGRATION = "0008_registry_invariant_triggers"
GUARD_BODY_MIGRATION = "0011_registry_pool_guard_fast_path"
# The plain claim the random-point claim is measured against: the pool's free IDs in index order
# from the first, without a probe for a mapping that uses one.
SORTED_CLAIM_SQL = (
    "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
    "ORDER BY Status, CanonicalId LIMIT %s FOR UPDATE SKIP LOCKED"
)
DEFAULT_PAIRS = 9
MARK_ASSIGNED_IDS = 10_000
MARK_ASSIGNED = f"mark {MARK_ASSIGNED_IDS:,} assigned"


class _SortedClaimMinter(Minter):
    """The minter with the sorted, unprobed claim: the other side of `--compare-claim-order`."""

    def _claim_free_ids(self, conn: Connection, needed: int) -> list[str]:
        with conn.cursor() as cursor:
            cursor.execute(SORTED_CLAIM_SQL, (needed,))
            claimed = [row[0] for row in cursor.fetchall()]
        if len(claimed) < needed:
            raise PoolExhaustedError(needed, len(claimed))
        return claimed


def guard_migration(name: str = GUARD_MIGRATION) -> ModuleType:
    """A guard migration's module (by default the one creating the guards), loaded by yoyo from
    the file it applies."""
    from yoyo import read_migrations  # noqa: PLC0415

    for migration in read_migrations(str(migrations_dir())):
        if migration.id == name:
            migration.load()
            return migration.module
    raise FileNotFoundError(f"no migration {name} in {migrations_dir()}")


class _Side:
    """One side of a comparison: the minter it mints with and how the registry is set for it."""

    def __init__(self, label: str, minter: Minter, arrange: Callable[[], None]) -> None:
        self.label, self.minter, self.arrange = label, minter, arrange
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.statements: dict[str, list[int]] = defaultdict(list)


def _guard_sides(bench: DatabaseSettings, labels: tuple[str, str], name: str) -> list[_Side]:
    """Migration `name`'s `apply` on the first side, its `rollback` on the second."""
    migration = guard_migration(name)
    admin = connect(bench)

    def arranged(step: Callable[[Connection], None]) -> Callable[[], None]:
        def arrange() -> None:
            step(admin)
            # Open both tables once: the first statement after a trigger's DDL reloads them
            # with their triggers, a cost of the switch, not of either side.
            with admin.cursor() as cursor:
                for table in ("canonical_ids", "identifiers"):
                    cursor.execute(f"SELECT CanonicalId FROM {table} LIMIT 1")
                    cursor.fetchall()
            admin.commit()

        return arrange

    minter = Minter(lambda: connect(bench))
    return [
        _Side(labels[0], minter, arranged(migration.apply)),
        _Side(labels[1], minter, arranged(migration.rollback)),
    ]


def _claim_sides(bench: DatabaseSettings) -> list[_Side]:
    return [
        _Side("random-point claim", Minter(lambda: connect(bench)), lambda: None),
        _Side("sorted claim", _SortedClaimMinter(lambda: connect(bench)), lambda: None),
    ]


def _run_once(
    bench: DatabaseSettings,
    side: _Side,
    workload: _Workload,
    run_number: int,
    watch: Connection | None,
) -> tuple[float, int]:
    """One untimed preparation and one timed run of `workload` by `side`'s minter: seconds and
    the statements the server counted."""
    side.arrange()
    minter = side.minter
    fill_pool(bench, 11_000)
    batches = workload.batches(
        lambda works: [minter.mint_ids(b) for b in _in_transactions(works)], run_number
    )
    _quiesce(watch)
    before = _questions(minter.connection)
    elapsed = _timed(lambda: [minter.mint_ids(b) for b in batches])
    return elapsed, _questions(minter.connection) - before - 1


def _mark_assigned_once(
    bench: DatabaseSettings, side: _Side, watch: Connection | None
) -> tuple[float, int]:
    """The one statement of minting that fires a guard for every row: `MARK_ASSIGNED_IDS` free
    IDs marked assigned in one `UPDATE`, as the minter sends it, and its commit."""
    side.arrange()
    fill_pool(bench, MARK_ASSIGNED_IDS)
    conn = side.minter.connection
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT CanonicalId FROM canonical_ids WHERE Status = 'free' "
            "ORDER BY Status, CanonicalId LIMIT %s",
            (MARK_ASSIGNED_IDS,),
        )
        ids = sorted(canonical_id for (canonical_id,) in cursor.fetchall())
    conn.commit()
    (statement,) = mark_assigned_statements(conn, ids, budget=statement_budget(conn))
    _quiesce(watch)

    def mark() -> None:
        with conn.cursor() as cursor:
            cursor.execute(statement)
        conn.commit()

    return _timed(mark), 1


def _statements_text(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    return f"{statistics.median(counts):g}" + ("" if low == high else f" ({low}-{high})")


def compare(
    settings: DatabaseSettings, what: str, *, pairs: int = DEFAULT_PAIRS
) -> list[dict[str, Any]]:
    """Alternating pairs of every workload on the two sides of `what` ("guards", "guard-bodies"
    or "claim-order"), on a scratch registry dropped afterwards; figure rows, ratios first side
    over second."""
    bench = _create_database(settings)
    sides: list[_Side] = []
    watch = None
    try:
        if what == "guards":
            sides = _guard_sides(bench, ("with guards", "without guards"), GUARD_MIGRATION)
        elif what == "guard-bodies":
            sides = _guard_sides(
                bench, ("one-condition guard", "declaring guard"), GUARD_BODY_MIGRATION
            )
        else:
            sides = _claim_sides(bench)
        watch = _purge_watch(bench)
        load_before = os.getloadavg()[0]
        ratios: dict[str, list[float]] = defaultdict(list)
        runs: list[tuple[str, Callable[[_Side, int], tuple[float, int]]]] = [
            (w.name, lambda side, n, w=w: _run_once(bench, side, w, n, watch)) for w in WORKLOADS
        ]
        if what != "claim-order":
            runs.append((MARK_ASSIGNED, lambda side, n: _mark_assigned_once(bench, side, watch)))
        for name, once in runs:
            for side in sides:  # warm-up, not counted; registers what all-existing looks up
                once(side, 0)
            for pair in range(pairs):
                order = sides if pair % 2 == 0 else sides[::-1]
                elapsed: dict[str, float] = {}
                for position, side in enumerate(order):
                    elapsed[side.label], used = once(side, 1 + 2 * pair + position)
                    side.samples[name].append(elapsed[side.label])
                    side.statements[name].append(used)
                ratios[name].append(elapsed[sides[0].label] / elapsed[sides[1].label])
        load_after = os.getloadavg()[0]
    finally:
        for side in {id(s.minter): s for s in sides}.values():
            side.minter.close()
        if watch is not None:
            watch.close()
        drop_bench_database(bench)
    first, second = sides
    rows = []
    for name, pair_ratios in ratios.items():
        first_ms = _median_ms(first.samples[name])
        second_ms = _median_ms(second.samples[name])
        rows += [
            figure_row(
                BENCHMARK,
                f"{name} {first.label} / {second.label}",
                first_ms / second_ms,
                "x",
                f"medians {first_ms} / {second_ms} ms; median of the {pairs} pair ratios "
                f"{statistics.median(pair_ratios):.3f}",
                rounded=True,
            ),
            figure_row(
                BENCHMARK,
                f"{name} statements",
                float(statistics.median(first.statements[name])),
                "statements/run",
                f"{first.label} {_statements_text(first.statements[name])}, "
                f"{second.label} {_statements_text(second.statements[name])}",
            ),
        ]
    watched = "runs waited for InnoDB purge" if watch else "runs did not wait for InnoDB purge"
    rows.append(
        figure_row(
            BENCHMARK,
            "load average",
            load_before,
            "1-min",
            f"{load_before:.2f} at the start, {load_after:.2f} at the end; {pairs} pairs per "
            f"workload; {watched}",
            rounded=True,
        )
    )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per workload instead of 9")
    parser.add_argument(
        "--compare-guards",
        action="store_true",
        help="alternate every workload with the registry's invariant guards and without them",
    )
    parser.add_argument(
        "--compare-guard-bodies",
        action="store_true",
        help="alternate every workload with the pool's update guard as migration 0011 makes it "
        "and as its rollback puts it back",
    )
    parser.add_argument(
        "--compare-claim-order",
        action="store_true",
        help="alternate every workload with the random-point claim and the sorted one",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=DEFAULT_PAIRS,
        help=f"alternating pairs per workload in a comparison (default {DEFAULT_PAIRS})",
    )
    args = parser.parse_args()
    database = DatabaseSettings.from_env()
    comparisons = [
        what
        for what, wanted in (
            ("guards", args.compare_guards),
            ("guard-bodies", args.compare_guard_bodies),
            ("claim-order", args.compare_claim_order),
        )
        if wanted
    ]
    if comparisons:
        if args.pairs < 1:
            parser.error(f"--pairs must be at least 1, got {args.pairs}")
        print(machine_line(database))
        for what in comparisons:
            print(figures_table(compare(database, what, pairs=args.pairs)))
        print(machine_line(database))
    else:
        for figure in run(database, quick=args.quick):
            name, value, unit = figure["figure"], figure["value"], figure["unit"]
            print(f"{name:30} {value:>11,.1f} {unit:15} {figure['detail']}")
