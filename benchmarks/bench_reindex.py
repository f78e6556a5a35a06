"""A reindex burst: every sample work in one window, minted through the CLI and through the Lambda
handler batch by batch, next to the floor of the same work.

Workload: `generate_works(count, seed=83)` (1,000,000 works; `--quick`: 20,000; `--count N`) in the
embedded SQLite store, all of them in scope (`--full`, the shape of a window a reindex fills).

- **CLI**: `idminter mint --full` in its own process, on an emptied registry (first run: every
  identifier new) and again (re-run: every identifier registered).
- **Lambda**: the `mint-window` path without Step Functions: the find-work entry
  (`aws_lambda.handler.find_work`, `{"full": true}`) splits the scope into batches of
  `IDMINTER_FIND_WORK_BATCH_SIZE` in S3, then each batch is one call of the minting entry
  (`aws_lambda.handler.handler`) with its partition ref, one after another in one process as a
  warm Lambda container runs them. S3 is a moto server in this (the parent) process, so what it
  stores is not counted in the child's memory.
- **Floor**: `bench_works.floor_run`, the bare script of what no works run can avoid, over the
  same store and registry state, in its own process too. It runs before the other paths and
  again after them; their ratios are to the mean of the two (the load of a shared machine moves
  within a run).

For each, measured in a fresh process: wall time (the whole process, interpreter start included),
peak memory (the process's high-water resident set, `VmHWM`), and SQL statements (every
`COM_QUERY` a pymysql connection of the process sends, counted by a hook installed before the
entry point runs). The Lambda path adds its batches and its slowest batch (the find-work call
apart).

With `--dagster`, instead: the Dagster window of a reindex. One window partition of
`identified_works` holding 100,000, then 300,000, then 1,000,000 sample works (`--count N`: N/10,
3N/10, N; `--quick`: 2,000 and 10,000), each minted by one run of the project's `mint_works` job
in a fresh process (`execute_in_process`, an ephemeral instance, every identifier new): its peak
memory, statements and batches, to show that a window's run streams in batches (memory flat as
the window grows). The largest window's run is SIGKILLed once its checkpoint in the registry
counts 90 % of its batches (its peak memory read from `/proc` just before), and run again: what
the second run reads, writes and mints, and the checkpoint before and after. Last, the smallest
window, finished, is run again on purpose: it re-mints the whole window.

With `--compare-guards`, instead: what the registry's invariant guards cost a user's first run.
`idminter mint --full` over `--count` sample works (default 5,000) on an emptied registry, with
the guards in place and dropped (the guard migration's own `apply` and `rollback`, as
`bench_minting --compare-guards` switches them), in `--pairs` alternating pairs (default 7) after
one untimed pair: each side's median wall time and statements, their ratio and the median of
the per-pair ratios.

Run alone: `python -m benchmarks.bench_reindex [--quick | --count N] [--dagster | --compare-guards
[--pairs N]]`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_minting import guard_migration
from benchmarks.minting_workload import clear_registry, fill_pool, reset_run
from benchmarks.support import (
    bench_database,
    figure_row,
    figures_table,
    machine_line,
    validate_rows,
)
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.works.checkpoints import WINDOW_CHECKPOINT_SECONDS_ENV
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import SqliteWorksStore, WindowScope
from tests.db_helpers import fetch_all

BENCHMARK = "reindex"
SEED = 83
FULL_COUNT = 1_000_000
QUICK_COUNT = 20_000
BUCKET = "idminter-bench-reindex"
# Sample works carry about 4.3 distinct identifiers each; a first run needs them all free.
FREE_IDS_PER_WORK = 6

# Run in the child before the entry point: count every statement pymysql sends, and write the
# count (and the child's figures) to the file the parent names.
_COUNTING = """
import atexit, json, os, sys
import pymysql.connections
from pymysql.constants import COMMAND
_sent = [0]
_send = pymysql.connections.Connection._execute_command
def _counted(self, command, sql):
    if command == COMMAND.COM_QUERY:
        _sent[0] += 1
    return _send(self, command, sql)
pymysql.connections.Connection._execute_command = _counted
_figures = {}
def _write():
    # The process's own high-water mark (VmHWM restarts at exec; wait4's ru_maxrss would
    # include the parent's size at the fork).
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_FIGURES"], "w") as out:
        json.dump({**_figures, "statements": _sent[0], "peak_mb": hwm / 1024}, out)
atexit.register(_write)
"""

_CLI = (
    _COUNTING
    + """
from idminter_pipeline.cli import main
sys.argv = ["idminter", "mint", "--full"]
try:
    main()
except SystemExit as stop:
    if stop.code:
        raise
"""
)

_FLOOR = (
    _COUNTING
    + """
from pathlib import Path
from benchmarks.bench_works import floor_run
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
conn = connect(DatabaseSettings.from_env())
floor_run(Path(os.environ["WORKS_STORE_PATH"]), conn)
conn.close()
"""
)

_DAGSTER = (
    _COUNTING
    + """
import dagster as dg
from idminter_pipeline.core.settings import DatabaseSettings
from pathlib import Path
from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.defs.works.jobs import mint_works_job
from tests.dagster_helpers import works_resources
job = dg.Definitions(
    assets=[identified_works],
    jobs=[mint_works_job],
    resources=works_resources(
        DatabaseSettings.from_env(),
        Path(os.environ["WORKS_STORE_PATH"]),
        Path(os.environ["IDMINTER_LOCAL_DIR"]) / "alerts.log",
    ),
).resolve_job_def(mint_works_job.name)
with dg.DagsterInstance.ephemeral() as instance:
    result = job.execute_in_process(
        instance=instance,
        partition_key=os.environ["BENCH_PARTITION"],
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    (materialization,) = result.asset_materializations_for_node("identified_works")
    _figures.update(
        {
            key: value.value
            for key, value in materialization.metadata.items()
            if isinstance(value.value, int) and not isinstance(value.value, bool)
        }
    )
    _figures["success"] = result.success
"""
)

_LAMBDA = (
    _COUNTING
    + """
import time
import boto3
from idminter_pipeline.aws_lambda.handler import find_work, handler
started = time.perf_counter()
found = find_work({"full": True, "jobId": "bench"}, None)
_figures["find_work_seconds"] = time.perf_counter() - started
manifest = boto3.client("s3").get_object(**found["manifest"])["Body"].read()
batches, failed = [], 0
for ref in json.loads(manifest):
    started = time.perf_counter()
    answer = handler(ref, None)
    batches.append(time.perf_counter() - started)
    failed += answer["failure_count"]
_figures.update(batches=batches, works=found["workCount"], failed=failed)
"""
)


def _child(code: str, env: dict[str, str], figures: Path) -> dict[str, Any]:
    """Run `code` in a fresh interpreter (its output dropped: a Lambda's go to its logs); its
    wall time and the figures it reports."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "BENCH_FIGURES": str(figures)},
        stdout=subprocess.DEVNULL,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    elapsed = time.perf_counter() - started
    return {**json.loads(figures.read_text()), "seconds": elapsed}


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return figure_row(BENCHMARK, figure, value, unit, detail)


PATHS = ("cli", "lambda", "floor")
ATTEMPTS = ("first", "re")


def _measure_paths(
    figures: dict[str, dict[str, Any]],
    paths: tuple[str, ...],
    attempts: tuple[str, ...],
    state: tuple[DatabaseSettings, Path, int],
    *,
    env: dict[str, str],
    out: Path,
) -> None:
    """Each path's first run (emptied registry and store) and re-run, into `figures`."""
    settings, store_path, free_ids = state
    codes = {"cli": _CLI, "lambda": _LAMBDA, "floor": _FLOOR}
    # The floor runs first and again last: on a shared machine the load moves within a
    # run, so the paths are compared with the floor's mean on either side of them.
    order = [*paths, "floor"] if "floor" in paths and len(paths) > 1 else list(paths)
    if "floor" in paths:
        order.insert(0, order.pop(order.index("floor")))
    floors: dict[str, list[dict[str, Any]]] = {attempt: [] for attempt in attempts}
    for path in order:
        code = codes[path]
        reset_run(settings, store_path, free_ids)
        for attempt in attempts:
            label = f"{path} {attempt}"
            print(f"   {label} ...", flush=True)
            figures[label] = _child(code, env, out)
            print(f"   {label}: {figures[label]['seconds']:.1f} s", flush=True)
            if path == "floor":
                floors[attempt].append(figures[label])
    for attempt, runs in floors.items():
        if runs:
            figures[f"floor {attempt}"] = {
                **runs[-1],
                "seconds": sum(run["seconds"] for run in runs) / len(runs),
                "each": [run["seconds"] for run in runs],
            }


def run(
    settings: DatabaseSettings,
    *,
    quick: bool,
    count: int | None = None,
    paths: tuple[str, ...] = PATHS,
    attempts: tuple[str, ...] = ATTEMPTS,
) -> list[dict[str, Any]]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 (only this benchmark needs it)

    count = count or (QUICK_COUNT if quick else FULL_COUNT)
    free_ids = count * FREE_IDS_PER_WORK
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        host, port = server.get_host_and_port()
        with tempfile.TemporaryDirectory() as tmp:
            store_path = Path(tmp) / "works.sqlite3"
            started = time.perf_counter()
            with SqliteWorksStore(store_path) as store:
                store.put_source(generate_works(count, seed=SEED))
            print(f"   {count:,} works stored in {time.perf_counter() - started:.0f} s", flush=True)
            env = {
                **os.environ,
                **settings.as_environment(),
                "WORKS_STORE_PATH": str(store_path),
                "IDMINTER_LOCAL_DIR": str(Path(tmp) / "local"),
                "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "eu-west-1",
                "IDMINTER_BATCHES_BUCKET": BUCKET,
            }
            env.pop("ELASTICSEARCH_URL", None)
            env.pop("S3_BUCKET", None)  # no run report: the port's report is the batch's answer
            import boto3  # noqa: PLC0415

            boto3.client(
                "s3",
                endpoint_url=env["AWS_ENDPOINT_URL"],
                region_name="eu-west-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ).create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
            figures: dict[str, dict[str, Any]] = {}
            out = Path(tmp) / "figures.json"
            _measure_paths(
                figures, paths, attempts, (settings, store_path, free_ids), env=env, out=out
            )
    finally:
        server.stop()

    detail = f"{count:,} sample works (seed {SEED}), one scope (--full), SQLite store"
    names = {"first": "first run (new IDs)", "re": "re-run (existing IDs)"}
    for attempt in attempts:
        name = names[attempt]
        floor = figures.get(f"floor {attempt}")
        for path in paths:
            measured = figures[f"{path} {attempt}"]
            what = {"cli": "idminter mint --full", "lambda": "Lambda, batch by batch"}.get(
                path, "floor"
            )
            rows.append(_row(f"{name}: {what}", measured["seconds"], "s", f"{detail}; wall time"))
            rows.append(_row(f"{name}: {what}, peak memory", measured["peak_mb"], "MB", detail))
            rows.append(
                _row(
                    f"{name}: {what}, statements",
                    float(measured["statements"]),
                    "statements",
                    detail,
                )
            )
            if path != "floor" and floor is not None:
                rows.append(
                    _row(
                        f"{name}: {what} vs floor",
                        measured["seconds"] / floor["seconds"],
                        "x",
                        f"{measured['seconds']:.1f} s / floor {floor['seconds']:.1f} s (the mean "
                        f"of {' and '.join(f'{each:.1f}' for each in floor['each'])} s, before "
                        "and after)",
                    )
                )
        lam = figures.get(f"lambda {attempt}")
        if lam is None:
            continue
        rows.append(
            _row(
                f"{name}: Lambda batches",
                float(len(lam["batches"])),
                "batches",
                f"find-work {lam['find_work_seconds']:.1f} s; works {lam['works']:,}; "
                f"failed {lam['failed']}",
            )
        )
        rows.append(
            _row(
                f"{name}: Lambda slowest batch",
                max(lam["batches"]),
                "s",
                f"of {len(lam['batches'])}; median "
                f"{sorted(lam['batches'])[len(lam['batches']) // 2]:.2f} s (the process's peak "
                f"memory, every batch's bound: {lam['peak_mb']:.0f} MB)",
            )
        )
    return rows


DAGSTER_SIZES = (100_000, 300_000, 1_000_000)
QUICK_DAGSTER_SIZES = (2_000, 10_000)
WINDOW = timedelta(minutes=15)
# The largest window's run is SIGKILLed once this share of its batches is written.
KILLED_AT = 0.9


def _window_key(start: datetime) -> str:
    return start.strftime("%Y-%m-%d-%H:%M")


def _identified(store_path: Path) -> int:
    """Identified works in the store (read while a run writes; SQLite counts them on the
    primary key's index)."""
    with closing(sqlite3.connect(store_path, timeout=60)) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM identified_works").fetchone()
    return int(count)


def _window_scope(start: datetime) -> WindowScope:
    return WindowScope(start, start + WINDOW, end_inclusive=False)


def _checkpoint(settings: DatabaseSettings, start: datetime) -> tuple[int, int, bool]:
    """The window's checkpoint as the registry holds it: batches and works of its runs so far,
    and whether the last one finished; (0, 0, False) when it has none."""
    rows = fetch_all(
        settings,
        "SELECT Batches, WorksRead, FinishedAt IS NOT NULL FROM works_run_checkpoints "
        "WHERE RunKind = 'window' AND JobId = %s",
        (_window_scope(start).describe().encode("utf-8"),),
    )
    return (int(rows[0][0]), int(rows[0][1]), bool(rows[0][2])) if rows else (0, 0, False)


def _high_water_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def _killed_mid_window(
    settings: DatabaseSettings, env: dict[str, str], start: datetime, at_batches: int
) -> dict[str, Any]:
    """Start the window's Dagster run and SIGKILL it once its checkpoint counts `at_batches`
    written batches; the run's wall time and peak memory up to the kill."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _DAGSTER],
        # Every batch recorded, so that the kill lands at a known count even in a short window.
        env={
            **env,
            "BENCH_PARTITION": _window_key(start),
            "BENCH_FIGURES": os.devnull,
            WINDOW_CHECKPOINT_SECONDS_ENV: "0",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        while child.poll() is None and _checkpoint(settings, start)[0] < at_batches:
            time.sleep(0.5)
        if child.poll() is not None:
            raise RuntimeError(
                f"the Dagster run ended (code {child.returncode}) before the kill, with "
                f"{_checkpoint(settings, start)[0]:,} batches written"
            )
        peak_mb = _high_water_mb(child.pid)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_mb}


def _window_row(label: str, measured: dict[str, Any]) -> dict[str, Any]:
    detail = (
        f"{measured['works_read']:,} works read, {measured['works_written']:,} written, "
        f"{measured['mint_calls']:,} batches, {measured['batches_resumed']:,} resumed, "
        f"{measured['statements']:,} statements, {measured['seconds']:.0f} s"
    )
    return figure_row(BENCHMARK, f"{label}: peak memory", measured["peak_mb"], "MB", detail)


def run_dagster(settings: DatabaseSettings, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """One `mint_works` run in-process (`execute_in_process`, an ephemeral instance) per window,
    each window holding `sizes[i]` works, every identifier new, the largest SIGKILLed once
    `KILLED_AT` of its batches are written and run again; then the smallest window run again on
    purpose, which re-mints all of it."""
    windows = [(DEFAULT_START + WINDOW * i, size) for i, size in enumerate(sizes)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "works.sqlite3"
        started = time.perf_counter()
        with SqliteWorksStore(store_path) as store:
            offset = 0
            for start, size in windows:
                # Work number i is indexed at start + spacing * i: these fill the window.
                spacing = WINDOW / size
                store.put_source(
                    generate_works(
                        size,
                        seed=SEED,
                        start=start - spacing * offset,
                        spacing=spacing,
                        offset=offset,
                    )
                )
                offset += size
        clear_registry(settings)
        fill_pool(settings, offset * FREE_IDS_PER_WORK)
        print(
            f"   {offset:,} works in {len(windows)} windows stored, pool filled in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        local = Path(tmp) / "local"
        local.mkdir()
        env = {
            **os.environ,
            **settings.as_environment(),
            "WORKS_STORE_PATH": str(store_path),
            "IDMINTER_LOCAL_DIR": str(local),
        }
        env.pop("ELASTICSEARCH_URL", None)
        out = Path(tmp) / "figures.json"
        *whole, (killed_start, killed_size) = windows
        for start, size in whole:
            print(f"   dagster window of {size:,} ...", flush=True)
            measured = _child(_DAGSTER, {**env, "BENCH_PARTITION": _window_key(start)}, out)
            print(f"   dagster window of {size:,}: {measured['seconds']:.1f} s", flush=True)
            rows.append(_window_row(f"Dagster window of {size:,} works", measured))

        batches = -(-killed_size // DEFAULT_BATCH_SIZE)
        at = int(batches * KILLED_AT)
        print(f"   dagster window of {killed_size:,}, killed at {at:,} batches ...", flush=True)
        identified_before = _identified(store_path)
        killed = _killed_mid_window(settings, env, killed_start, at)
        done, done_works, _ = _checkpoint(settings, killed_start)
        written = _identified(store_path) - identified_before
        print(f"   killed after {killed['seconds']:.0f} s, {done:,} batches written", flush=True)
        again = _child(_DAGSTER, {**env, "BENCH_PARTITION": _window_key(killed_start)}, out)
        total, total_works, finished = _checkpoint(settings, killed_start)
        print(f"   run again: {again['seconds']:.1f} s", flush=True)
        if not again["success"] or not finished:
            raise RuntimeError("the Dagster run after the kill failed")
        rows.append(
            figure_row(
                BENCHMARK,
                f"Dagster window of {killed_size:,} works, killed at {done:,} of {batches:,} "
                "batches: peak memory at the kill",
                killed["peak_mb"],
                "MB",
                f"SIGKILLed after {killed['seconds']:.0f} s with {done:,} batches "
                f"({done_works:,} works) checkpointed in the registry and {written:,} "
                "of the window's identified works in the store",
            )
        )
        rows.append(
            figure_row(
                BENCHMARK,
                f"Dagster window of {killed_size:,} works, run again after the kill: works read",
                float(again["works_read"]),
                "works",
                f"registry checkpoint {done:,} batches ({done_works:,} works) before, "
                f"{total:,} ({total_works:,}) after, finished; the run's metadata: "
                f"{again['batches_resumed']:,} batches resumed, {again['works_read']:,} read, "
                f"{again['works_written']:,} written, {again['mint_calls']:,} batches, "
                f"{again['identifiers_minted']:,} identifiers minted, "
                f"{again['identifiers_existing']:,} existing, {again['statements']:,} statements, "
                f"{again['seconds']:.0f} s, {again['peak_mb']:.0f} MB",
            )
        )

        start, size = windows[0]
        print(f"   dagster window of {size:,} again, on purpose ...", flush=True)
        measured = _child(_DAGSTER, {**env, "BENCH_PARTITION": _window_key(start)}, out)
        rows.append(_window_row(f"Dagster window of {size:,} works, finished, run again", measured))
    return rows


GUARDS_COUNT = 5_000
GUARDS_PAIRS = 7


def compare_guards(
    settings: DatabaseSettings, *, count: int = GUARDS_COUNT, pairs: int = GUARDS_PAIRS
) -> list[dict[str, Any]]:
    """`idminter mint --full`'s first run over `count` sample works, with the invariant guards in
    place and dropped, in alternating pairs after an untimed one (module docstring)."""
    migration = guard_migration()
    sides = {"with guards": migration.apply, "without guards": migration.rollback}
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    statements: dict[str, list[int]] = {side: [] for side in sides}
    ratios: list[float] = []
    admin = connect(settings)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store_path = Path(tmp) / "works.sqlite3"
            with SqliteWorksStore(store_path) as store:
                store.put_source(generate_works(count, seed=SEED))
            env = {
                **os.environ,
                **settings.as_environment(),
                "WORKS_STORE_PATH": str(store_path),
                "IDMINTER_LOCAL_DIR": str(Path(tmp) / "local"),
            }
            for name in ("ELASTICSEARCH_URL", "S3_BUCKET"):
                env.pop(name, None)
            out = Path(tmp) / "figures.json"
            for pair in range(pairs + 1):
                order = list(sides) if pair % 2 == 0 else list(sides)[::-1]
                elapsed: dict[str, float] = {}
                for side in order:
                    sides[side](admin)
                    admin.commit()
                    reset_run(settings, store_path, count * FREE_IDS_PER_WORK)
                    figures = _child(_CLI, env, out)
                    elapsed[side] = figures["seconds"]
                    if pair:  # the first pair warms the server and the page cache
                        seconds[side].append(figures["seconds"])
                        statements[side].append(figures["statements"])
                    print(f"   pair {pair} {side}: {figures['seconds']:.2f} s", flush=True)
                if pair:
                    ratios.append(elapsed["with guards"] / elapsed["without guards"])
    finally:
        migration.apply(admin)  # the registry as migrated, whatever happened
        admin.close()
    detail = (
        f"idminter mint --full, first run, {count:,} sample works (seed {SEED}), "
        f"median of {pairs} alternating pairs"
    )
    rows = [
        _row(f"{side}: wall time", statistics.median(seconds[side]), "s", detail) for side in sides
    ]
    # A claim that starts too near its partition's end takes the rest from the beginning with one
    # more SELECT: the count of a run varies by a few statements on either side.
    rows += [
        _row(
            f"{side}: statements",
            statistics.median(statements[side]),
            "statements",
            f"{detail}; {min(statements[side])} to {max(statements[side])}",
        )
        for side in sides
    ]
    median_ratio = statistics.median(seconds["with guards"]) / statistics.median(
        seconds["without guards"]
    )
    rows.append(_row("with / without guards (medians)", median_ratio, "x", detail))
    rows.append(_row("with / without guards (pair median)", statistics.median(ratios), "x", detail))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="run the reindex benchmark alone")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT:,} works")
    parser.add_argument("--count", type=int, help=f"works in scope (default {FULL_COUNT:,})")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="which of cli,lambda,floor (default: all)"
    )
    parser.add_argument("--first-only", action="store_true", help="no re-run")
    parser.add_argument(
        "--dagster",
        action="store_true",
        help="instead: one mint_works run per window of "
        + " / ".join(f"{size:,}" for size in DAGSTER_SIZES)
        + " works (--quick: "
        + " / ".join(f"{size:,}" for size in QUICK_DAGSTER_SIZES)
        + "; --count N: N/10, 3N/10, N), the largest killed at 90 %% of its batches and run "
        "again, then the smallest run again on purpose",
    )
    parser.add_argument(
        "--compare-guards",
        action="store_true",
        help="instead: the CLI's first run with the registry's invariant guards and without them "
        f"(--count, default {GUARDS_COUNT:,} works)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=GUARDS_PAIRS,
        help=f"alternating pairs for --compare-guards (default {GUARDS_PAIRS})",
    )
    args = parser.parse_args(argv)
    if args.compare_guards:
        if args.pairs < 1:
            parser.error(f"--pairs must be at least 1, got {args.pairs}")
        with bench_database(DatabaseSettings.from_env(), BENCHMARK) as bench:
            print(machine_line(bench), flush=True)
            rows = compare_guards(bench, count=args.count or GUARDS_COUNT, pairs=args.pairs)
            rows = validate_rows(BENCHMARK, rows)
            print(figures_table(rows))
            print(machine_line(bench))
        return
    if args.dagster:
        with bench_database(DatabaseSettings.from_env(), BENCHMARK) as bench:
            sizes = QUICK_DAGSTER_SIZES if args.quick else DAGSTER_SIZES
            if args.count:  # the same proportions, up to --count
                sizes = tuple(args.count * size // DAGSTER_SIZES[-1] for size in DAGSTER_SIZES)
            rows = validate_rows(BENCHMARK, run_dagster(bench, sizes))
        print(figures_table(rows))
        return
    paths = tuple(p for p in args.paths.split(",") if p)
    if not paths or set(paths) - set(PATHS):
        parser.error(f"--paths: choose from {','.join(PATHS)}, got {args.paths!r}")
    attempts = ATTEMPTS[:1] if args.first_only else ATTEMPTS
    with bench_database(DatabaseSettings.from_env(), BENCHMARK) as bench:
        figures = run(bench, quick=args.quick, count=args.count, paths=paths, attempts=attempts)
        rows = validate_rows(BENCHMARK, figures)
    print(figures_table(rows))


if __name__ == "__main__":
    main()
