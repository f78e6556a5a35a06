"""The long versions of the reliability suite: `python -m benchmarks.stress` (`make stress`).

- contention: many processes minting overlapping keys with predecessors over many rounds;
- kills: a minting process killed with SIGKILL at random points, hundreds of times;
- restarts: a private MariaDB (its own port and folder, never the shared server) crashed with
  SIGKILL and shut down cleanly under a running minter, again and again.

After each drill the SQL oracle of `tests/registry_invariants.py` checks the registry and this
prints every invariant it checked with the number of rows examined. Exit status 1 if anything
failed. Drills run on databases of their own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.crash_runs import (
    KillReport,
    complete_run,
    kill_at_random_points,
    restart_server_mid_run,
)
from benchmarks.minting_workload import fill_pool, run_concurrent
from benchmarks.support import bench_database
from idminter_pipeline.core.settings import DatabaseSettings, project_root
from idminter_pipeline.local_servers.mariadb import LocalServerPaths, ensure_server, stop_server

sys.path.insert(0, str(project_root() / "tests"))
from registry_invariants import InvariantReport, check_crash_run, check_registry


def _print_report(title: str, report: InvariantReport) -> None:
    print(f"   oracle after {title}:")
    for line in report.lines():
        print(f"   {line}")


def contention(settings: DatabaseSettings, args: argparse.Namespace) -> bool:
    ok = True
    for processes in args.processes:
        batches = processes * args.rounds
        key_space = batches * args.works // 3
        with bench_database(settings, f"stress_contention_{processes}") as db:
            fill_pool(db, key_space * 7)
            print(
                f"-- contention: {processes} processes, {batches} batches of {args.works} "
                f"works over {key_space} works",
                flush=True,
            )
            run = run_concurrent(
                db,
                processes=processes,
                total_batches=batches,
                works_per_batch=args.works,
                key_space=key_space,
                seed=args.seed,
                timeout=3600,
            )
            outcomes = sum((r.outcomes for r in run.reports), Counter())
            print(
                f"   {run.identifiers:,} identifiers in {run.seconds:.1f}s "
                f"({run.identifiers / run.seconds:,.0f}/s); outcomes {dict(outcomes)}; "
                f"{run.retries} retries; {run.batches_failed} failed batches"
            )
            for failure in run.failures[:5]:
                print(f"   FAILED BATCH {failure}")
            conflicting = [c for r in run.reports for c in r.conflicting_answers]
            print(
                f"   one answer per source within each process: "
                f"{'ok' if not conflicting else conflicting[:3]}"
            )
            report = check_registry(
                db,
                declared=run.declared(),
                given=run.given(),
                requested=run.requested(),
                complete=run.batches_failed == 0,
            )
            _print_report("contention", report)
            ok &= report.ok and run.batches_failed == 0 and not conflicting
    return ok


def kills(settings: DatabaseSettings, args: argparse.Namespace) -> bool:
    batches, works = max(args.kills * 3, 60), 30
    with bench_database(settings, "stress_kills") as db:
        fill_pool(db, batches * works * 5)
        print(
            f"-- kills: {args.kills} SIGKILLs of a minting process (seed {args.seed}), the "
            "oracle after each",
            flush=True,
        )
        failures: list[str] = []

        def check(so_far: KillReport) -> None:
            report = check_crash_run(
                db, batches, works, complete=False, given=so_far.given, begun=so_far.begun
            )
            if not report.ok:
                failures.append(f"after kill {so_far.kills}: {report.violations}")

        started = time.monotonic()
        report = kill_at_random_points(
            db,
            batches=batches,
            works=works,
            kills=args.kills,
            rng=random.Random(args.seed),
            after_each_kill=check,
        )
        print(
            f"   {report.kills} kills in {time.monotonic() - started:.0f}s, "
            f"{report.inside_mint_call} inside a mint call, "
            f"{sum(report.batches_committed_between_kills)} batches committed between kills, "
            f"{report.checks} oracle checks, {len(failures)} failed"
        )
        for failure in failures[:5]:
            print(f"   VIOLATION {failure}")
        rerun = complete_run(db, batches=batches, works=works)
        final = check_crash_run(
            db, batches, works, complete=True, given=report.given + rerun.given()
        )
        _print_report("kills and a completing re-run", final)
        return final.ok and not failures


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def restarts(settings: DatabaseSettings, args: argparse.Namespace) -> bool:
    if os.geteuid() != 0:
        print("-- restarts: skipped (starting a private mariadbd needs root)")
        return True
    server = DatabaseSettings(port=_free_port())
    with tempfile.TemporaryDirectory(prefix="idminter-stress-") as tmp:
        paths = LocalServerPaths(Path(tmp) / "mariadb")
        print(
            f"-- restarts: private MariaDB on port {server.port}; {args.restarts} restarts "
            "(alternating SIGKILL and clean shutdown) under a running minter",
            flush=True,
        )
        ensure_server(server, paths, start_local=True)
        try:
            with bench_database(server, "stress_restarts") as db:
                between, works = 4, 30
                batches = between * (args.restarts + 2)
                fill_pool(db, batches * works * 5)
                kinds = ["crash" if n % 2 == 0 else "stop" for n in range(args.restarts)]
                report = restart_server_mid_run(
                    db,
                    paths,
                    batches=batches,
                    works=works,
                    restarts=kinds,
                    batches_between=between,
                )
                print(
                    f"   restarts {dict(Counter(report.restarts))}; the worker saw "
                    f"{report.connection_errors} failed calls and the minter reconnected "
                    f"{report.minter_reconnects} times inside calls; all {batches} batches done"
                )
                final = check_crash_run(db, batches, works, complete=True, given=report.given)
                _print_report("server restarts", final)
                return final.ok
        finally:
            stop_server(paths)


DRILLS: dict[str, Callable[[DatabaseSettings, argparse.Namespace], bool]] = {
    "contention": contention,
    "kills": kills,
    "restarts": restarts,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(DRILLS), action="append")
    parser.add_argument("--processes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--rounds", type=int, default=25, help="batches per process")
    parser.add_argument("--works", type=int, default=100, help="works per batch")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=random.randrange(1, 10**6))
    args = parser.parse_args(argv)
    settings = DatabaseSettings.from_env()
    results = {}
    for name in args.only or list(DRILLS):
        started = time.monotonic()
        try:
            results[name] = DRILLS[name](settings, args)
        except Exception as error:
            print(f"   {name} ERROR: {type(error).__name__}: {error}")
            results[name] = False
        print(
            f"   {name}: {'passed' if results[name] else 'FAILED'} "
            f"in {time.monotonic() - started:.0f}s\n",
            flush=True,
        )
    print(
        "stress summary: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in results.items())
    )
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
