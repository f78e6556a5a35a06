"""What minting a multi-window run one window at a time costs, against one scan over the range.

`identified_works` runs the works pipeline once per window, so each partition gets exactly its
own figures (docs/design/works-pipeline.md). The floor is one pipeline run over the whole range, the
way the asset worked before. Both re-mint the same sample works (every identifier registered,
so the figures measure the per-window overhead: scans, batches, transactions), alternating
runs; medians and the ratio are reported for a few busy windows and for a day of 96 sparse ones.

Runs against the database it is given (created and migrated by the harness), or on its own:
`.venv/bin/python -m benchmarks.bench_windows [--quick]`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.settings import DatabaseSettings
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import SqliteWorksStore, WindowScope

BENCHMARK = "windows"
WINDOW = timedelta(minutes=15)


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return {
        "benchmark": BENCHMARK,
        "figure": figure,
        "value": value,
        "unit": unit,
        "detail": detail,
    }


def _scopes(windows: int) -> tuple[WindowScope, list[WindowScope]]:
    whole = WindowScope(DEFAULT_START, DEFAULT_START + WINDOW * windows, end_inclusive=False)
    each = [
        WindowScope(
            DEFAULT_START + WINDOW * i, DEFAULT_START + WINDOW * (i + 1), end_inclusive=False
        )
        for i in range(windows)
    ]
    return whole, each


def _measure(
    settings: DatabaseSettings, works: int, windows: int, repeats: int, folder: Path
) -> tuple[float, float]:
    """(one scan, one run per window) median seconds over the same works."""
    spacing = WINDOW * windows / works
    path = folder / f"works-{windows}.sqlite3"
    with SqliteWorksStore(path) as store:
        store.put_source(generate_works(works, seed=3, spacing=spacing))
    whole, each = _scopes(windows)
    one_scan, per_window = [], []
    with SqliteWorksStore(path) as store, Minter(lambda: connect(settings)) as minter:
        pipeline = WorksPipeline(store, minter)
        pipeline.run(whole)  # registers everything; the timed runs re-mint
        for _ in range(repeats):
            started = time.perf_counter()
            read_once = pipeline.run(whole).works_read
            one_scan.append(time.perf_counter() - started)
            started = time.perf_counter()
            read_per_window = sum(pipeline.run(scope).works_read for scope in each)
            per_window.append(time.perf_counter() - started)
            if not read_once == read_per_window == works:
                raise RuntimeError(f"read {read_once} and {read_per_window} of {works} works")
    return statistics.median(one_scan), statistics.median(per_window)


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    works = 600 if quick else 2_400
    repeats = 3 if quick else 7
    top_up(lambda: connect(settings), works * 10)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, windows in (("4 busy windows", 4), ("96 sparse windows", 96)):
            one_scan, per_window = _measure(settings, works, windows, repeats, Path(folder))
            detail = (
                f"{works:,} sample works re-minted; one scan {one_scan * 1000:.0f} ms, one run per "
                f"window {per_window * 1000:.0f} ms; median of {repeats}, alternating"
            )
            rows.append(_row(f"{label}: one run per window", per_window * 1000, "ms", detail))
            rows.append(_row(f"{label}: one scan (floor)", one_scan * 1000, "ms", detail))
            rows.append(_row(f"{label}: per-window / floor", per_window / one_scan, "x", detail))
    return rows


if __name__ == "__main__":
    from benchmarks.support import standalone_main

    standalone_main(run, BENCHMARK, sys.argv[1:])
