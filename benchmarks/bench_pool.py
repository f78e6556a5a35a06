"""Free-ID pool: top-up rate, ID generation rate, and what the sensor's watch query costs.

Figures:
- top-up rate (IDs/s) filling an empty pool with `top_up` (1,000,000 IDs; quick: 100,000), then
  topping up the same amount again on top of the full table;
- the baseline: one row per INSERT statement, as the public reference minter does;
- the Python-only generation rate of `generate_canonical_ids_bulk`;
- the sensor's one statement (`watch_pool`, bounded at the low watermark) against an exact
  `COUNT(*)` of the whole pool, median of repeated runs.

Runs against the database it is given (created and migrated by the harness), or on its own:
`.venv/bin/python benchmarks/bench_pool.py [--quick]`.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from benchmarks.minting_workload import clear_registry
from benchmarks.support import figure_row, standalone_main
from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.pool import (
    DEFAULT_BATCH_SIZE,
    count_free,
    top_up,
    watch_pool,
)

BENCHMARK = "pool"


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return figure_row(BENCHMARK, figure, value, unit, detail)


def _one_row_per_statement(settings: DatabaseSettings, count: int) -> float:
    """IDs/s inserting one row per statement (committed every 1,000, kinder than per row)."""
    ids = generate_canonical_ids_bulk(count)
    conn = connect(settings)
    try:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for n, value in enumerate(ids, start=1):
                cursor.execute(
                    "INSERT IGNORE INTO canonical_ids (CanonicalId, Status) VALUES (%s, 'free')",
                    (value,),
                )
                if n % 1_000 == 0:
                    conn.commit()
        conn.commit()
        return count / (time.perf_counter() - started)
    finally:
        conn.close()


def _median_seconds(action: Any, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    size = 100_000 if quick else 1_000_000
    factory = lambda: connect(settings)  # noqa: E731
    rows: list[dict[str, Any]] = []

    # Generation alone, without the database.
    count = 100_000 if quick else 500_000
    started = time.perf_counter()
    generate_canonical_ids_bulk(count)
    bulk_rate = count / (time.perf_counter() - started)
    rows.append(
        _row(
            "ID generation, bulk",
            round(bulk_rate),
            "IDs/s",
            f"{count:,} IDs; one 64-bit os.urandom word per ID, mixed radix",
        )
    )

    # The reference minter's way: one row per statement.
    clear_registry(settings)
    baseline = 10_000 if quick else 50_000
    rows.append(
        _row(
            "insert, one row per statement (reference minter)",
            round(_one_row_per_statement(settings, baseline)),
            "IDs/s",
            f"{baseline:,} IDs, committed every 1,000",
        )
    )

    # Top-ups: empty pool, then the same again on top of a full table.
    clear_registry(settings)
    first = top_up(factory, size, batch_size=DEFAULT_BATCH_SIZE)
    rows.append(
        _row(
            "top-up rate, empty pool",
            round(first.ids_per_second),
            "IDs/s",
            f"{first.added:,} IDs in {first.duration_seconds:.2f}s, batch {first.batch_size:,}, "
            f"{first.writers} writers, "
            f"{first.rounds} round(s), {first.duplicates_skipped} duplicate draw(s)",
        )
    )
    second = top_up(factory, 2 * size, batch_size=DEFAULT_BATCH_SIZE)
    rows.append(
        _row(
            "top-up rate, on top of a full pool",
            round(second.ids_per_second),
            "IDs/s",
            f"{second.added:,} IDs onto {second.free_before:,} in "
            f"{second.duration_seconds:.2f}s, batch {second.batch_size:,}, "
            f"{second.writers} writers",
        )
    )

    # What a sensor tick costs, against counting the whole pool.
    low_watermark = size // 4
    conn = connect(settings)
    try:
        watch = _median_seconds(
            lambda: watch_pool(conn, free_cap=low_watermark, minted_cap=size), 9
        )
        full = _median_seconds(lambda: count_free(conn), 5)
    finally:
        conn.close()
    rows.append(
        _row(
            "sensor watch query",
            round(watch * 1000, 2),
            "ms",
            f"median of 9; free count bounded at {low_watermark:,} of {2 * size:,} free IDs",
        )
    )
    rows.append(
        _row(
            "exact COUNT(*) of free IDs (not used by the sensor)",
            round(full * 1000, 2),
            "ms",
            f"median of 5; {2 * size:,} free IDs",
        )
    )
    clear_registry(settings)
    return rows


if __name__ == "__main__":
    standalone_main(run, BENCHMARK, sys.argv[1:])
