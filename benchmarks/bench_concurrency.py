"""Minting throughput with 1, 2, 4 and 8 concurrent processes, with retries and failures counted.

Every level mints the same total work (strong scaling) into an emptied registry, three times in
the full run (the median is reported, the range shown): 32 batches of catalogue-like works (500
each; 100 in the quick run; about six identifiers per work, 40% with a predecessor, chains,
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

import pymysql

from benchmarks.minting_workload import clear_registry, fill_pool, run_concurrent
from idminter_pipeline.core.settings import DatabaseSettings, project_root

LEVELS = (1, 2, 4, 8)
BENCHMARK = "concurrency"


def _oracle_check(settings: DatabaseSettings, run: Any) -> str:
    tests_dir = str(project_root() / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from registry_invariants import check_registry  # noqa: PLC0415  (lives with the tests)

    for attempt in (1, 2):
        try:
            report = check_registry(settings, declared=run.declared(), given=run.given())
        except pymysql.err.MySQLError as error:
            # The figures stand on their own; an oracle that could not run is said, not hidden.
            if attempt == 2:
                return f"oracle could not run: {error}"
            continue
        if report.ok:
            return "invariants ok"
        return "INVARIANTS VIOLATED: " + "; ".join(report.violations)
    raise AssertionError("unreachable")


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    batches, works = (32, 100) if quick else (32, 500)
    # The machine is shared: the full run repeats each level and reports the median.
    repeats = 1 if quick else 3
    # Each work is asked for about twice across all batches.
    key_space = batches * works // 2
    rows: list[dict[str, Any]] = []
    for processes in LEVELS:
        runs = []
        verdicts = []
        for _ in range(repeats):
            clear_registry(settings)
            fill_pool(settings, key_space * 7)
            result = run_concurrent(
                settings,
                processes=processes,
                total_batches=batches,
                works_per_batch=works,
                key_space=key_space,
            )
            verdicts.append(_oracle_check(settings, result))
            runs.append(result)
        rates = [r.identifiers / r.seconds if r.seconds else 0.0 for r in runs]
        median_run = runs[rates.index(statistics.median_low(rates))]
        failed = sum(r.batches_failed for r in runs)
        retries = sum(r.retries for r in runs)
        latencies = [s for r in runs for report in r.reports for s in report.batch_seconds]
        median_ms = statistics.median(latencies) * 1000 if latencies else 0.0
        verdict = "invariants ok" if set(verdicts) == {"invariants ok"} else "; ".join(verdicts)
        detail = (
            f"median of {repeats}: {batches} batches of {works} works "
            f"({median_run.identifiers:,} identifiers) in {median_run.seconds:.2f}s "
            f"(range {min(rates):,.0f}-{max(rates):,.0f}/s); {verdict}"
        )
        failures = [f for r in runs for f in r.failures]
        if failures:
            detail += f"; first failure: {failures[0][:160]}"
        rows += [
            {
                "benchmark": BENCHMARK,
                "figure": f"throughput, {processes} process(es)",
                "value": statistics.median_low(rates),
                "unit": "identifiers/s",
                "detail": detail,
            },
            {
                "benchmark": BENCHMARK,
                "figure": f"failed batches, {processes} process(es)",
                "value": failed,
                "unit": "batches",
                "detail": f"of {batches * repeats}; must be 0",
            },
            {
                "benchmark": BENCHMARK,
                "figure": f"retries, {processes} process(es)",
                "value": retries,
                "unit": "retries",
                "detail": f"transaction retries in Minter.stats over {batches * repeats} batches",
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
