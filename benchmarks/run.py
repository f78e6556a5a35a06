"""Run every benchmark module and publish the figures: `python -m benchmarks.run [--quick]`.

Each `benchmarks/bench_*.py` module runs against a database of its own, created (and migrated) on
the configured server (`RDS_*` or the project-local MariaDB) and dropped afterwards. The figures
are printed as one table and written to `benchmarks/results/latest.json` (git-ignored) together
with the date, the commit and the machine they came from. A module that fails is reported and
the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.support import (
    bench_database,
    figures_table,
    git_commit,
    machine_info,
    validate_rows,
)
from idminter_pipeline.core.settings import DatabaseSettings

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"

logger = logging.getLogger("benchmarks")


def discover(only: list[str] | None = None) -> list[str]:
    """Module names of `bench_*.py`, sorted; `only` filters by name with or without `bench_`."""
    names = sorted(path.stem for path in BENCHMARKS_DIR.glob("bench_*.py"))
    if only:
        wanted = {name if name.startswith("bench_") else f"bench_{name}" for name in only}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(
                f"unknown benchmark(s) {', '.join(sorted(unknown))}; have {', '.join(names)}"
            )
        names = [name for name in names if name in wanted]
    return names


def run_module(
    name: str, settings: DatabaseSettings, *, quick: bool, keep: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The module's rows, and a record of how its run went (seconds, error)."""
    started = time.monotonic()
    record: dict[str, Any] = {"module": name, "ok": False}
    rows: list[dict[str, Any]] = []
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            raise TypeError(f"benchmarks/{name}.py has no run(settings, *, quick) function")
        with bench_database(settings, name.removeprefix("bench_"), keep=keep) as bench:
            record["database"] = bench.database
            rows = validate_rows(name, run(bench, quick=quick))
        record["ok"] = True
    except Exception as error:
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
        print(f"!! {name} failed: {record['error']}", file=sys.stderr)
    record["seconds"] = round(time.monotonic() - started, 2)
    return rows, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short workloads (minutes, not tens)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this module (repeatable)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "latest.json", help="where to write JSON"
    )
    parser.add_argument(
        "--keep-databases", action="store_true", help="leave the benchmark databases in place"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    settings = DatabaseSettings.from_env()
    names = discover(args.only)
    machine = machine_info(settings)
    started_at = datetime.now(UTC)
    print(
        f"{len(names)} benchmark module(s), {'quick' if args.quick else 'full'} run, on "
        f"{machine['nproc']} CPU(s) ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"{machine['server_version']} at {machine['server']}"
    )
    all_rows: list[dict[str, Any]] = []
    records = []
    for name in names:
        print(f"-- {name} ...", flush=True)
        rows, record = run_module(name, settings, quick=args.quick, keep=args.keep_databases)
        print(f"   {len(rows)} figure(s) in {record['seconds']}s", flush=True)
        all_rows.extend(rows)
        records.append(record)

    print()
    print(figures_table(all_rows))
    failed = [record for record in records if not record["ok"]]
    document = {
        "date": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "commit": git_commit(),
        "machine": machine,
        "modules": records,
        "results": all_rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    stamped = args.output.parent / f"run-{started_at:%Y%m%dT%H%M%SZ}.json"
    if args.output.parent == RESULTS_DIR:
        stamped.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    for record in failed:
        print(f"FAILED {record['module']}: {record['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
