"""Adoption speed: N rows of a port-created registry adopted vs one INSERT ... SELECT of them.

For each size, the reference port's tables are created from the RFC's DDL text itself
(`tests/fixtures/rfc083_proposed_schema.sql`: latin1, case-insensitive) and filled server-side
(the legacy benchmark's generator: unique canonical IDs in today's format, Sierra-like source
identifiers, one mapping per ID) plus 1% free IDs. `adopt` then runs end to end: this project's
migrations beside the port's tables, triggers, keyset copy of both tables, catch-up, the full
verification of both tables in both directions, locked final pass, `RENAME`. The baseline is
the plain copy of the same rows (one `INSERT ... SELECT` into `canonical_ids` and one into
`identifiers`, same session settings, no verification) into a freshly migrated database.

Throughout an adoption, a port minter writes 20 times a second (a canonical ID and its mapping),
so the catch-up passes and the final lock have real work. The two are measured alternately
(baseline, adoption, baseline, adoption, ...) so load on the shared machine falls on both; each
pair's ratio is printed, and the median ratio is the figure (bound: at most 2).

quick: 1 million rows, 2 pairs. full: 1 million rows, 3 pairs.
Run alone: `python benchmarks/bench_adoption.py [--full] [--rows N --pairs P]`.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pymysql

if __name__ == "__main__":  # runnable before the benchmark harness exists
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import support
from benchmarks.bench_legacy_migration import ROWS_PER_STATEMENT, _id_expression
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.legacy_migration import adopt as adoption
from idminter_pipeline.registry.schema import apply_migrations

BENCHMARK = "adoption"
BATCH_SIZE = 50_000
RFC_DDL = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "rfc083_proposed_schema.sql"
)
PORT_WRITES_PER_SECOND = 20.0
BOUND = 2.0


def generate_port_registry(settings: DatabaseSettings, rows: int) -> float:
    """The RFC's tables, as the port creates them, filled server-side; seconds it took."""
    started = time.monotonic()
    with support.server_side_rows(settings, ("canonical_ids", "identifiers")) as (conn, cursor):
        for statement in RFC_DDL.read_text().split(";"):
            if "CREATE TABLE" in statement:
                cursor.execute(statement)
        cursor.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        free = rows // 100
        for chunk in range(0, rows + free, ROWS_PER_STATEMENT):
            chunk_numbers = support.numbers(
                chunk, chunk + min(ROWS_PER_STATEMENT, rows + free - chunk)
            )
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) SELECT "
                f"{_id_expression()}, IF(n < {rows}, 'assigned', 'free') FROM {chunk_numbers}"
            )
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "SELECT ELT(1 + n % 4, 'Work', 'Work', 'Image', 'Item'), "
                "IF(n % 3 = 0, 'calm-record-id', 'sierra-system-number'), "
                f"CONCAT('b', n, IF(n % 50 = 0, 'é', 'x')), {_id_expression()} "
                f"FROM {chunk_numbers} AND n < {rows}"
            )
            conn.commit()
    return time.monotonic() - started


def _baseline(settings: DatabaseSettings, port: DatabaseSettings) -> float:
    """The plain copy: one INSERT ... SELECT per table, no batches, no verification."""
    return support.plain_copy_seconds(
        settings,
        [
            "INSERT INTO canonical_ids (CanonicalId, Status, CreatedAt) "
            f"SELECT CanonicalId, Status, CreatedAt FROM `{port.database}`.canonical_ids",
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId, "
            "CreatedAt) SELECT OntologyType, SourceSystem, SourceId, CanonicalId, CreatedAt "
            f"FROM `{port.database}`.identifiers",
        ],
    )


class _PortMinter(support.BackgroundWriter):
    """The port, still minting while the adoption runs: `rate` new IDs with their mapping a
    second, until stopped (or, for the instant of the swap, refused by the guard)."""

    seed = 23

    def write(self, conn: Any, cursor: Any, canonical: str, rng: random.Random) -> bool:
        try:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'assigned')",
                (canonical,),
            )
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                "VALUES ('Work', 'folio-instance', %s, %s)",
                (f"in{self.writes}", canonical),
            )
            conn.commit()
        except pymysql.err.MySQLError as error:
            conn.rollback()
            # An ID drawn twice, a deadlock with the re-copy, the guard at the swap.
            if error.args[0] in (1062, 1213, 1205, 1644):
                return False
            raise
        return True


def _adopt_once(settings: DatabaseSettings, rows: int) -> tuple[float, Any, int]:
    port = support.create_bench_database(settings, "port", migrate=False)
    try:
        generate_port_registry(port, rows)
        # As for the legacy migration's figure: this project's migrations are applied first.
        apply_migrations(lambda: connect(port), adopting=True)
        minter = _PortMinter(port, PORT_WRITES_PER_SECOND)
        minter.start()
        started = time.monotonic()
        phases: dict[str, float] = {}

        def timing(progress: Any) -> None:
            phases.setdefault(progress.phase, time.monotonic() - started)

        try:
            report = adoption.adopt(
                lambda: connect(port), batch_size=BATCH_SIZE, variants=[], progress=timing
            )
            total = time.monotonic() - started
            print(f"  phases (first seen, s): {phases}", file=sys.stderr)
        finally:
            minter.stop.set()
            minter.join()
        if minter.error:
            raise RuntimeError(f"the port minter failed during the adoption: {minter.error}")
        kept = support.count_rows(port, "identifiers_port")
        if not (
            report.swapped and report.verified and support.count_rows(port, "identifiers") >= kept
        ):
            raise RuntimeError(f"adoption of {rows} rows did not complete: {report}")
        return total, report, minter.writes
    finally:
        support.drop_bench_database(port)


def _baseline_once(settings: DatabaseSettings, rows: int) -> float:
    port = support.create_bench_database(settings, "portbase", migrate=False)
    target = support.create_bench_database(settings, "plain", migrate=False)
    try:
        generate_port_registry(port, rows)
        return _baseline(target, port)
    finally:
        support.drop_bench_database(port)
        support.drop_bench_database(target)


def _measure(settings: DatabaseSettings, rows: int, pairs: int) -> list[dict[str, Any]]:
    ratios, plains, adopts = [], [], []
    last: Any = None
    writes = 0
    for pair in range(1, pairs + 1):
        plain = _baseline_once(settings, rows)
        total, last, writes = _adopt_once(settings, rows)
        plains.append(plain)
        adopts.append(total)
        ratios.append(total / plain)
        print(
            f"  pair {pair}: plain INSERT ... SELECT {plain:.1f}s, adopt {total:.1f}s "
            f"(lock {last.lock_seconds:.3f}s), ratio {total / plain:.2f}",
            file=sys.stderr,
        )
    ratio = statistics.median(ratios)
    label = f"{rows:,} rows"
    return [
        {
            "benchmark": BENCHMARK,
            "figure": f"adopt / plain INSERT ... SELECT {label}",
            "value": round(ratio, 2),
            "unit": "x",
            "detail": f"median of {pairs} alternating pairs {[round(r, 2) for r in ratios]}; "
            f"bound {BOUND:g}x: {'met' if ratio <= BOUND else 'NOT met'}",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"adopt+verify {label}",
            "value": round(statistics.median(adopts), 1),
            "unit": "s",
            "detail": f"copy, catch-up, verification both ways, lock, rename; batch {BATCH_SIZE}; "
            f"a port minter wrote {writes:,} times meanwhile ({PORT_WRITES_PER_SECOND:g}/s)",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"plain INSERT ... SELECT {label}",
            "value": round(statistics.median(plains), 1),
            "unit": "s",
            "detail": "baseline: both tables, no batching, checkpoint or verification",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"final lock held {label}",
            "value": round(last.lock_seconds, 3),
            "unit": "s",
            "detail": f"{last.changes_applied_under_lock:,} logged changes applied under it, "
            f"{last.lock_rows_read:,} rows read",
        },
    ]


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    return _measure(settings, 1_000_000, 2 if quick else 3)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="3 pairs (default: 2)")
    parser.add_argument("--rows", type=int, help="a custom size instead of 1,000,000")
    parser.add_argument("--pairs", type=int, default=2, help="with --rows: alternating pairs")
    args = parser.parse_args()
    target = DatabaseSettings.from_env()
    results = (
        _measure(target, args.rows, args.pairs) if args.rows else run(target, quick=not args.full)
    )
    support.print_figures(results)
