"""Shared pieces of the benchmark harness: a throwaway database, machine facts, the figures table.

Benchmark modules may use these (`bench_database`, `standalone_main`), but nothing here is
required: the harness hands every `run` a freshly created and migrated database either way.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pymysql

from idminter_pipeline.core.canonical_ids import FIRST_CHARACTERS, OTHER_CHARACTERS
from idminter_pipeline.core.settings import DatabaseSettings, project_root
from idminter_pipeline.local_servers.mariadb import server_version
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations
from tests.db_helpers import create_database_statement, drop_database_statement, execute_once

BENCH_DATABASE_PREFIX = "idminter_bench_"
RESULT_KEYS = ("benchmark", "figure", "value", "unit", "detail")

BenchRun = Callable[..., list[dict[str, Any]]]


def _admin(settings: DatabaseSettings) -> Any:
    return connect(settings.with_database(""))


def create_bench_database(
    settings: DatabaseSettings, label: str, *, migrate: bool = True, charset: str | None = None
) -> DatabaseSettings:
    """A new database on the configured server, named so stray ones are easy to find and drop;
    `charset` (with its collation) instead of the registry's utf8mb4_bin."""
    safe = "".join(c if c.isalnum() else "_" for c in label)[:24]
    name = f"{BENCH_DATABASE_PREFIX}{safe}_{uuid.uuid4().hex[:8]}"
    statement = create_database_statement(name, *([charset] if charset else []))
    execute_once(_admin(settings), statement)
    bench = settings.with_database(name)
    if migrate:
        apply_migrations(lambda: connect(bench))
    return bench


def drop_bench_database(settings: DatabaseSettings) -> None:
    if not settings.database.startswith(BENCH_DATABASE_PREFIX):
        raise ValueError(f"refusing to drop {settings.database!r}: not a benchmark database")
    execute_once(_admin(settings), drop_database_statement(settings))


def count_rows(settings: DatabaseSettings, table: str) -> int:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


@contextmanager
def bench_database(
    settings: DatabaseSettings, label: str, *, keep: bool = False
) -> Iterator[DatabaseSettings]:
    """A migrated, empty database for one benchmark, dropped afterwards unless `keep`."""
    bench = create_bench_database(settings, label)
    try:
        yield bench
    finally:
        if not keep:
            drop_bench_database(bench)


# A cross join of `digits` six times: the numbers 0 to 999,999 from a ten-row table.
_SIX_DIGITS = "a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 100000*g.d"


def create_digits(cursor: Any) -> None:
    """The ten-row `digits` table `numbers` reads; drop it when the rows are generated."""
    cursor.execute("CREATE TABLE digits (d INT NOT NULL PRIMARY KEY)")
    cursor.execute("INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)")


def numbers(start: int, end: int) -> str:
    """A derived table `numbers` of the column `n`, from `start` below `end` (at most a million
    apart): a FROM clause, its WHERE begun (more conditions follow with AND)."""
    return (
        f"(SELECT {start} + {_SIX_DIGITS} AS n FROM digits a, digits b, digits c, "
        f"digits e, digits f, digits g) numbers WHERE n < {end}"
    )


@contextmanager
def server_side_rows(
    settings: DatabaseSettings, analyze: Sequence[str] = ()
) -> Iterator[tuple[Any, Any]]:
    """A connection and cursor on `settings` with the `digits` table `numbers` reads. Once the
    block has generated its rows, `digits` is dropped and the `analyze` tables analyzed, so the
    benchmark's plans see real statistics; then committed and closed."""
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            create_digits(cursor)
            yield conn, cursor
            cursor.execute("DROP TABLE digits")
            if analyze:
                cursor.execute(f"ANALYZE TABLE {', '.join(analyze)}")
                cursor.fetchall()
        conn.commit()
    finally:
        conn.close()


def plain_copy_seconds(settings: DatabaseSettings, statements: Sequence[str]) -> float:
    """The baseline a migration is measured against: `statements` (each one INSERT ... SELECT,
    no batches, no verification) into the migrated empty database `settings`, timed."""
    apply_migrations(lambda: connect(settings))
    conn = connect(settings)
    try:
        started = time.monotonic()
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.execute("SET SESSION foreign_key_checks = 0")
            for statement in statements:
                cursor.execute(statement)
        conn.commit()
        return time.monotonic() - started
    finally:
        conn.close()


class StopWriting(Exception):
    """Raised by `BackgroundWriter.write` when the writer is refused for good."""


class BackgroundWriter(threading.Thread):
    """A minter still writing while a migration runs: `rate` writes a second, each with a new
    random canonical ID, until stopped or `write` raises StopWriting; `writes` counts them,
    `error` says why it failed, if it did."""

    seed = 0
    autocommit = False

    def __init__(self, settings: DatabaseSettings, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.rate = rate
        self.stop = threading.Event()
        self.writes = 0
        self.error: str | None = None

    def write(self, conn: Any, cursor: Any, canonical: str, rng: random.Random) -> bool:
        """One write with `canonical`; False when it was not made (drawn again next time)."""
        raise NotImplementedError

    def run(self) -> None:
        rng = random.Random(self.seed)
        conn = connect(self.settings)
        if self.autocommit:
            conn.autocommit(True)
        try:
            with conn.cursor() as cursor:
                while not self.stop.wait(1 / self.rate):
                    canonical = rng.choice(FIRST_CHARACTERS) + "".join(
                        rng.choice(OTHER_CHARACTERS) for _ in range(7)
                    )
                    if self.write(conn, cursor, canonical, rng):
                        self.writes += 1
        except StopWriting:
            return
        except pymysql.err.MySQLError as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            conn.close()


def print_figures(rows: list[dict[str, Any]]) -> None:
    """A benchmark's figures, one line each, as a standalone run prints them."""
    for row in rows:
        print(f"{row['figure']:45} {row['value']:>12,} {row['unit']:6} {row['detail']}")


def _read_proc(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read_proc("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    for line in _read_proc("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def rows_by_size(
    measure: Callable[[DatabaseSettings, int], list[dict[str, Any]]],
    settings: DatabaseSettings,
    *,
    quick: bool,
) -> list[dict[str, Any]]:
    """`measure`'s rows at one million rows (quick), or at one and ten million."""
    sizes = (1_000_000,) if quick else (1_000_000, 10_000_000)
    return [row for size in sizes for row in measure(settings, size)]


def main_by_size(
    measure: Callable[[DatabaseSettings, int], list[dict[str, Any]]],
    description: str,
    *,
    full_by_default: bool,
) -> None:
    """A by-size benchmark run on its own: at one million rows, or at one and ten million
    (`--full`; the default where `full_by_default`, `--quick` then asking for one million), or
    at `--rows N` alone, on the configured server; its figures printed."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=description)
    if full_by_default:
        parser.add_argument("--quick", action="store_true", help="1M rows only")
    else:
        parser.add_argument("--full", action="store_true", help="1M and 10M rows (default: 1M)")
    parser.add_argument("--rows", type=int, help="one custom size instead")
    args = parser.parse_args()
    target = DatabaseSettings.from_env()
    if args.rows:
        print_figures(measure(target, args.rows))
    else:
        quick = args.quick if full_by_default else not args.full
        print_figures(rows_by_size(measure, target, quick=quick))


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def machine_info(settings: DatabaseSettings) -> dict[str, Any]:
    """What the figures came from: they mean little without the machine and the server."""
    memory = memory_bytes()
    return {
        "nproc": os.cpu_count(),
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "cpu_model": cpu_model(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "server": settings.describe(),
        "server_version": server_version(settings) or "unreachable",
    }


def machine_line(settings: DatabaseSettings) -> str:
    """The commit, machine, server and load average, on one line to print beside figures."""
    machine = machine_info(settings)
    return (
        f"commit {git_commit()}; {machine['nproc']} cores, {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB; {machine['server_version']}; "
        f"load average {' '.join(str(load) for load in machine['load_average'])}"
    )


def figure_row(
    benchmark: str, figure: str, value: float, unit: str, detail: str, *, rounded: bool = False
) -> dict[str, Any]:
    """One row of a benchmark's figures, as `validate_rows` expects them (`rounded`: ratios to
    3 decimals, everything else to 1)."""
    if rounded:
        value = round(value, 3 if unit == "x" else 1)
    return {
        "benchmark": benchmark,
        "figure": figure,
        "value": value,
        "unit": unit,
        "detail": detail,
    }


def validate_rows(module: str, rows: object) -> list[dict[str, Any]]:
    """Rows as the contract says, or a ValueError naming the module and the bad row."""
    if not isinstance(rows, list):
        raise ValueError(f"{module}.run returned {type(rows).__name__}, expected a list of dicts")
    checked = []
    for row in rows:
        if not isinstance(row, dict) or set(RESULT_KEYS) - set(row):
            raise ValueError(f"{module}.run returned a row without {RESULT_KEYS}: {row!r}")
        value = row["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{module}.run returned a non-numeric value: {row!r}")
        checked.append({**row, "value": float(value)})
    return checked


def figures_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no figures)"
    frame = pd.DataFrame(rows, columns=list(RESULT_KEYS))
    frame["value"] = frame["value"].map(lambda v: f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}")
    # Numbers right-aligned, text left-aligned: pandas right-aligns every string column.
    for column in ("benchmark", "figure", "unit", "detail"):
        text = frame[column].astype(str)
        frame[column] = text.str.ljust(max(text.str.len().max(), len(column)))
    with pd.option_context("display.max_colwidth", 400, "display.width", 400):
        return frame.to_string(index=False, justify="left")


def standalone_main(run: BenchRun, label: str, argv: list[str] | None = None) -> None:
    """`python -m benchmarks.bench_x [--quick]`: one module on its own database, figures printed."""
    import argparse  # noqa: PLC0415  (only for running a module alone)

    parser = argparse.ArgumentParser(description=f"run the {label} benchmark alone")
    parser.add_argument("--quick", action="store_true", help="the short version")
    args = parser.parse_args(argv)
    settings = DatabaseSettings.from_env()
    with bench_database(settings, label) as bench:
        rows = validate_rows(label, run(bench, quick=args.quick))
    print(figures_table(rows))
