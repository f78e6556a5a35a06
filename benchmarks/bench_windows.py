"""What minting a multi-window run one window at a time costs, against one scan over the range.

`identified_works` runs the works pipeline once per window, so each partition gets exactly its
own figures (docs/design/works-pipeline.md). The floor is one pipeline run over the whole range, the
way the asset worked before. Both re-mint the same sample works (every identifier registered,
so the figures measure the per-window overhead: scans, batches, transactions), alternating
runs; medians and the ratio are reported for a few busy windows and for a day of 96 sparse ones.
It also runs that day as one Dagster `mint_works` run in-process, against the same windows minted
directly, and reports what Dagster adds per window (target: at most 5 ms, 1.2x the direct run),
how much of that is each window's checkpoint (`works.checkpoints`, timed as the same windows
direct with it), and how much is Dagster's own floor: a do-nothing asset with the same
partitions and the same partitioned blocking check, which every window's materialization and
check cost.
That run uses an ephemeral Dagster instance (`DagsterInstance.ephemeral()`: run and event storage
in in-memory SQLite), what `execute_in_process` uses when given none, so the figure is the cost
of the Dagster layer itself rather than of one disk's commits.

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

from benchmarks.support import figure_row, standalone_main
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.works.checkpoints import RunCheckpoints
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import SqliteWorksStore, WindowScope

BENCHMARK = "windows"
WINDOW = timedelta(minutes=15)


def _row(figure: str, value: float, unit: str, detail: str) -> dict[str, Any]:
    return figure_row(BENCHMARK, figure, value, unit, detail)


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


def _floor_asset(dg: Any, partitions_def: Any, check_name: str) -> Any:
    """Dagster's own cost of what every window must show: an asset with the same partitions and
    the same partitioned blocking check, which does no work. Over 96 partitions it still stores a
    materialization and a check evaluation per partition (and, on SQLite storage, a planned
    materialization per partition)."""
    check_key = dg.AssetCheckKey(dg.AssetKey("dagster_floor"), check_name)

    @dg.asset(
        name="dagster_floor",
        partitions_def=partitions_def,
        check_specs=[
            dg.AssetCheckSpec(
                check_name, asset="dagster_floor", partitions_def=partitions_def, blocking=True
            )
        ],
    )
    def dagster_floor(context) -> Any:  # unannotated: `dg` is local, annotations are strings
        for key in context.partition_keys:
            context.add_asset_metadata({"works_read": 0}, partition_key=key)
        yield dg.MaterializeResult()
        for key in context.partition_keys:
            yield dg.AssetCheckEvaluation(
                asset_key=check_key.asset_key,
                check_name=check_name,
                passed=True,
                severity=dg.AssetCheckSeverity.ERROR,
                blocking=True,
                partition=key,
            )
        yield dg.Output(
            None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key)
        )

    return dagster_floor


def _dagster_day(
    settings: DatabaseSettings, works: int, repeats: int, folder: Path
) -> tuple[float, float, float, float]:
    """(direct, direct with window checkpoints, Dagster, Dagster's floor) median seconds for a
    day of 96 windows: one `mint_works` run in-process over the 96 partitions (an ephemeral,
    in-memory Dagster instance), against the same windows minted one after another without
    Dagster (without and with each window's checkpoint), and against a run of the do-nothing
    floor asset over the same partitions, alternating."""
    import dagster as dg  # noqa: PLC0415  (only this figure needs Dagster)

    from idminter_pipeline.defs.works.assets import (  # noqa: PLC0415
        NO_FAILED_WORKS_CHECK,
        identified_works,
    )
    from idminter_pipeline.defs.works.jobs import mint_works_job  # noqa: PLC0415
    from idminter_pipeline.defs.works.partitions import WORKS_PARTITIONS  # noqa: PLC0415
    from tests.dagster_helpers import works_resources  # noqa: PLC0415

    windows = 96
    path = folder / "works-dagster.sqlite3"
    with SqliteWorksStore(path) as store:
        store.put_source(generate_works(works, seed=3, spacing=WINDOW * windows / works))
    _, each = _scopes(windows)
    floor_asset = _floor_asset(dg, WORKS_PARTITIONS, NO_FAILED_WORKS_CHECK)
    defs = dg.Definitions(
        assets=[identified_works, floor_asset],
        jobs=[mint_works_job, dg.define_asset_job("dagster_floor", selection=[floor_asset])],
        resources=works_resources(settings, path, folder / "alerts.log"),
    )
    job = defs.resolve_job_def("mint_works")
    floor_job = defs.resolve_job_def("dagster_floor")
    first = WORKS_PARTITIONS.get_partition_key_for_timestamp(each[0].start.timestamp())
    last = WORKS_PARTITIONS.get_partition_key_for_timestamp(each[-1].start.timestamp())
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }

    def direct(*, checkpointed: bool = False) -> None:
        # The collector settings every works entry point uses (the Dagster run's included), so
        # the difference is the Dagster layer, not the collector.
        with (
            batch_run_collector(),
            SqliteWorksStore(path) as store,
            Minter(lambda: connect(settings)) as minter,
            RunCheckpoints(lambda: connect(settings)) as checkpoints,
        ):
            pipeline = WorksPipeline(store, minter)
            read = sum(
                pipeline.run(scope, checkpoints=checkpoints if checkpointed else None).works_read
                for scope in each
            )
            if read != works:
                raise RuntimeError("the direct run did not read every work")

    with dg.DagsterInstance.ephemeral() as instance:

        def through_dagster() -> None:
            if not job.execute_in_process(instance=instance, tags=tags).success:
                raise RuntimeError("the Dagster run failed")

        def floor() -> None:
            if not floor_job.execute_in_process(instance=instance, tags=tags).success:
                raise RuntimeError("the Dagster floor run failed")

        through_dagster()  # registers everything; the timed runs re-mint
        floor()
        runs = {
            "direct": direct,
            "checkpointed": lambda: direct(checkpointed=True),
            "dagster": through_dagster,
            "floor": floor,
        }
        samples: dict[str, list[float]] = {kind: [] for kind in runs}
        for repeat in range(repeats):
            order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
            for kind in order:
                started = time.perf_counter()
                runs[kind]()
                samples[kind].append(time.perf_counter() - started)
    return tuple(statistics.median(samples[kind]) for kind in runs)  # type: ignore[return-value]


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
        direct, checkpointed, dagster, floor = _dagster_day(settings, works, repeats, Path(folder))
        added = (dagster - direct) / 96 * 1000
        detail = (
            f"{works:,} sample works re-minted over 96 windows; one mint_works run in-process "
            f"(ephemeral in-memory Dagster instance) {dagster * 1000:.0f} ms, the same windows "
            f"direct {direct * 1000:.0f} ms, a do-nothing asset with the same partitions and "
            f"check {floor * 1000:.0f} ms; median of {repeats}, alternating; target at most "
            "5 ms a window (1.2x)"
        )
        rows.append(_row("Dagster, a day of 96 windows / direct", dagster / direct, "x", detail))
        rows.append(_row("Dagster, added per window", added, "ms", detail))
        rows.append(_row("Dagster's own floor per window", floor / 96 * 1000, "ms", detail))
        rows.append(
            _row("project's Dagster layer per window", added - floor / 96 * 1000, "ms", detail)
        )
        rows.append(
            _row(
                "of it, the window's checkpoint per window",
                (checkpointed - direct) / 96 * 1000,
                "ms",
                f"the same windows direct with each window's checkpoint (`works.checkpoints`, "
                f"what the Dagster run keeps) {checkpointed * 1000:.0f} ms, without "
                f"{direct * 1000:.0f} ms; median of {repeats}, alternating",
            )
        )
    return rows


if __name__ == "__main__":
    standalone_main(run, BENCHMARK, sys.argv[1:])
