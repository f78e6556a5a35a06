"""Minting throughput with 1, 2, 4 and 8 concurrent processes, with retries and failures counted.

Every level mints the same total work (strong scaling) into an emptied registry: `batches`
batches of catalogue-like works (about six identifiers each, 40% with a predecessor, chains,
subjects shared between works) drawn from one key space, so processes race on the same keys.
Each process is spawned with its own connection; the clock runs from a barrier (all processes
ready) to the last report. After each level the SQL oracle checks the registry's invariants.

Figures per level: identifiers answered per second, failed batches (must be 0), transaction
retries the minters counted (`Minter.stats`), and the median batch latency.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from benchmarks.minting_workload import clear_registry, fill_pool, run_concurrent
from idminter_pipeline.settings import DatabaseSettings, project_root

LEVELS = (1, 2, 4, 8)
BENCHMARK = "concurrency"


def _oracle_check(settings: DatabaseSettings, run: Any) -> str:
    tests_dir = str(project_root() / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from registry_invariants import check_registry  # noqa: PLC0415  (lives with the tests)

    report = check_registry(settings, declared=run.declared(), given=run.given())
    return "invariants ok" if report.ok else "INVARIANTS VIOLATED: " + "; ".join(report.violations)


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    batches, works = (32, 100) if quick else (32, 500)
    # Each work is asked for about twice across all batches.
    key_space = batches * works // 2
    rows: list[dict[str, Any]] = []
    for processes in LEVELS:
        clear_registry(settings)
        fill_pool(settings, key_space * 7)
        result = run_concurrent(
            settings,
            processes=processes,
            total_batches=batches,
            works_per_batch=works,
            key_space=key_space,
        )
        verdict = _oracle_check(settings, result)
        latencies = [s for report in result.reports for s in report.batch_seconds]
        median_ms = statistics.median(latencies) * 1000 if latencies else 0.0
        detail = (
            f"{processes} process(es), {result.batches_ok}/{batches} batches of {works} works "
            f"({result.identifiers:,} identifiers) in {result.seconds:.2f}s; "
            f"{result.retries} retries, {result.batches_failed} failed; {verdict}"
        )
        if result.failures:
            detail += f"; first failure: {result.failures[0][:160]}"
        rows += [
            {
                "benchmark": BENCHMARK,
                "figure": f"throughput, {processes} process(es)",
                "value": result.identifiers / result.seconds if result.seconds else 0.0,
                "unit": "identifiers/s",
                "detail": detail,
            },
            {
                "benchmark": BENCHMARK,
                "figure": f"failed batches, {processes} process(es)",
                "value": result.batches_failed,
                "unit": "batches",
                "detail": f"of {batches}; must be 0",
            },
            {
                "benchmark": BENCHMARK,
                "figure": f"retries, {processes} process(es)",
                "value": result.retries,
                "unit": "retries",
                "detail": "transaction retries in Minter.stats (deadlocks, lock waits, races)",
            },
            {
                "benchmark": BENCHMARK,
                "figure": f"median batch latency, {processes} process(es)",
                "value": median_ms,
                "unit": "ms",
                "detail": f"{works} works per batch",
            },
        ]
    return rows


if __name__ == "__main__":
    from benchmarks.support import standalone_main

    standalone_main(run, BENCHMARK)
