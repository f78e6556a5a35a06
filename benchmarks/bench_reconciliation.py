"""Reconciliation speed: every scan over N mappings in keyset batches, and the variant scan
against a single GROUP BY over the whole table.

For each size a registry is generated server-side (INSERT ... SELECT over a digits cross join,
like bench_legacy_migration: unique IDs in today's format, Sierra- and CALM-like source
identifiers, all `assigned`), with known findings planted: 1,000 case variants (an upper-case
twin of a mapping spread over the whole table, under an ID of its own), 1,000 orphan IDs and 100
free IDs in use. `reconciliation.reconcile` runs once as a report (no repair) with the default
batch size, and must find exactly those. The baseline is the old variant scan: one GROUP BY of
the folded keys over the whole table, in one statement.

quick: 1 million mappings. full: 1 million and 10 million.
Run alone: `python -m benchmarks.bench_reconciliation [--quick] [--rows N]`.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.bench_legacy_migration import _id_expression
from benchmarks.support import (
    create_bench_database,
    drop_bench_database,
    main_by_size,
    numbers,
    rows_by_size,
    server_side_rows,
)
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry import reconciliation
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.invariants import (
    POOL_GUARD_NAMES,
    drop_guards,
    install_pool_guards,
)

BENCHMARK = "reconciliation"
VARIANTS = 1_000
ORPHANS = 1_000
FREE_IN_USE = 100
ROWS_PER_STATEMENT = 1_000_000


def generate_registry(settings: DatabaseSettings, rows: int) -> float:
    """`rows` mappings plus the planted findings, server-side; return the seconds it took."""
    started = time.monotonic()
    step = max(rows // VARIANTS, 1)
    with server_side_rows(settings, analyze=("canonical_ids", "identifiers")) as (conn, cursor):
        cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        source = "ELT(1 + {m} % 4, 'Work', 'Work', 'Image', 'Item'), " + (
            "IF({m} % 3 = 0, 'calm-record-id', 'sierra-system-number')"
        )
        # Mappings n < rows; variants n in [rows, rows + VARIANTS) twin mapping (n - rows) *
        # step in upper case; orphans after that, IDs only.
        total = rows + VARIANTS + ORPHANS
        for start in range(0, total, ROWS_PER_STATEMENT):
            end = min(start + ROWS_PER_STATEMENT, total)
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) "
                f"SELECT {_id_expression()}, 'assigned' FROM {numbers(start, end)}"
            )
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                f"SELECT {source.format(m='n')}, CONCAT('b', n, 'x'), {_id_expression()} "
                f"FROM {numbers(start, min(end, rows))}"
            )
            twin = f"((n - {rows}) * {step})"
            cursor.execute(
                "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
                f"SELECT {source.format(m=twin)}, CONCAT('B', {twin}, 'X'), {_id_expression()} "
                f"FROM {numbers(start, min(end, rows + VARIANTS))} AND n >= {rows}"
            )
            conn.commit()
        # A corrupted pool: the guards refuse freeing a mapped ID, so the rows are written
        # past them, as a bad restore would.
        drop_guards(conn, POOL_GUARD_NAMES)
        cursor.execute(
            "UPDATE canonical_ids c JOIN (SELECT CanonicalId FROM identifiers "
            f"ORDER BY CanonicalId LIMIT {FREE_IN_USE}) used USING (CanonicalId) "
            "SET c.Status = 'free'"
        )
        install_pool_guards(conn)
    return time.monotonic() - started


def _old_variant_scan(settings: DatabaseSettings) -> tuple[float, int]:
    """The variant scan as one GROUP BY of the folded keys over the whole table."""
    conn = connect(settings)
    try:
        started = time.monotonic()
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM identifiers GROUP BY "
                "LOWER(TRIM(OntologyType)), LOWER(TRIM(SourceSystem)), LOWER(TRIM(SourceId)) "
                "HAVING COUNT(*) > 1) g"
            )
            groups = int(cursor.fetchone()[0])
        conn.rollback()
        return time.monotonic() - started, groups
    finally:
        conn.close()


def _measure(settings: DatabaseSettings, rows: int) -> list[dict[str, Any]]:
    registry = create_bench_database(settings, "reconciliation")
    try:
        generated = generate_registry(registry, rows)
        report = reconciliation.reconcile(lambda: connect(registry))
        found = {f.finding: f.count for f in report.findings}
        expected = {
            reconciliation.CASE_OR_PADDING_VARIANTS: VARIANTS,
            reconciliation.ORPHAN_ASSIGNED_IDS: ORPHANS,
            reconciliation.FREE_IDS_IN_USE: FREE_IN_USE,
            reconciliation.MAPPINGS_MISSING_ID: 0,
        }
        wrong = {
            name: (found[name], count) for name, count in expected.items() if found[name] != count
        }
        if wrong:
            raise RuntimeError(f"reconciliation of {rows} mappings found (got, planted) {wrong}")
        old_seconds, old_groups = _old_variant_scan(registry)
        if old_groups != VARIANTS:
            raise RuntimeError(f"the old variant scan found {old_groups} groups, not {VARIANTS}")
    finally:
        drop_bench_database(registry)
    mappings = rows + VARIANTS
    label = f"{mappings:,} mappings"
    scans = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.scan_seconds.items())
    variants = report.scan_seconds["variants"]
    batch = reconciliation.DEFAULT_BATCH_SIZE
    return [
        {
            "benchmark": BENCHMARK,
            "figure": f"reconcile {label}",
            "value": round(report.duration_seconds, 1),
            "unit": "s",
            "detail": f"{round(mappings / report.duration_seconds):,} mappings/s; {scans}; batch "
            f"{batch:,}; generated in {generated:.0f}s; planted findings all found",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"variant scan {label}",
            "value": round(variants, 1),
            "unit": "s",
            "detail": f"keyset batches of {batch:,}, {VARIANTS:,} groups found; "
            f"{round(mappings / variants):,} mappings/s",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"one GROUP BY over the table {label}",
            "value": round(old_seconds, 1),
            "unit": "s",
            "detail": "the variant scan as one statement over the whole table",
        },
    ]


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    return rows_by_size(_measure, settings, quick=quick)


if __name__ == "__main__":
    main_by_size(_measure, __doc__.splitlines()[0], full_by_default=True)
