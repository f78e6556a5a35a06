"""Crashes: kill -9 a minting process at random points, and crash or restart the database server
under a running minter; afterwards the invariants hold, nothing half-written remains and
re-running completes the work.

The server restarts use a private MariaDB started for this module on its own port and folder;
the shared server is never touched. `make stress` runs the long versions.
"""

from __future__ import annotations

import os
import random

import pytest
from db_helpers import create_database, drop_database
from registry_invariants import check_crash_run

from benchmarks.crash_runs import complete_run, kill_at_random_points, restart_server_mid_run
from benchmarks.minting_workload import fill_pool
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations

KILLS = 12  # `make stress` kills many more times
BATCHES = 80
WORKS = 30  # about 165 identifiers per batch, so a mint call lasts long enough to be hit
SEED = int(os.environ.get("IDMINTER_CRASH_SEED", "0")) or random.randrange(1, 10**6)


def _oracle(settings: DatabaseSettings, batches: int, works: int, **kwargs: object) -> None:
    check_crash_run(settings, batches, works, **kwargs).assert_ok()


@pytest.mark.slow(seconds=25)
def test_kill_minus_nine_at_random_points_leaves_nothing_half_written(registry):
    print(f"crash seed {SEED} (IDMINTER_CRASH_SEED={SEED} repeats it)")
    fill_pool(registry, BATCHES * WORKS * 5)
    report = kill_at_random_points(
        registry,
        batches=BATCHES,
        works=WORKS,
        kills=KILLS,
        rng=random.Random(SEED),
        after_each_kill=lambda so_far: _oracle(
            registry, BATCHES, WORKS, complete=False, given=so_far.given, begun=so_far.begun
        ),
    )
    print(
        f"{report.kills} kills, {report.inside_mint_call} inside a mint call, batches committed "
        f"between kills {report.batches_committed_between_kills}"
    )
    assert report.kills == KILLS
    assert report.checks == KILLS
    # The drill must really interrupt minting, not only kill idle processes.
    assert report.inside_mint_call >= KILLS // 4, report
    assert sum(report.batches_committed_between_kills) > 0

    rerun = complete_run(registry, batches=BATCHES, works=WORKS)
    assert rerun.lines[-1] == "finished"
    # Every ID handed out before a kill survived, and the re-run gave the same ones.
    assert len(report.given) > 0
    _oracle(registry, BATCHES, WORKS, complete=True, given=report.given + rerun.given())


def test_the_server_crashing_and_restarting_mid_run_loses_nothing(private_server):
    server, paths = private_server
    settings = create_database(server, "restart_")
    try:
        apply_migrations(lambda: connect(settings))
        batches, works = 24, 30
        fill_pool(settings, batches * works * 5)
        report = restart_server_mid_run(
            settings,
            paths,
            batches=batches,
            works=works,
            restarts=["crash", "stop"],
            batches_between=4,
        )
        print(report.restarts, report.connection_errors, report.minter_reconnects)
        assert report.restarts == ["crash", "stop"]
        assert report.batches_done_before_first_restart >= 4
        # The worker was minting when the server went away, and it recovered both times
        # (inside the minter's own retries, or by retrying the call).
        assert report.connection_errors + report.minter_reconnects >= 2, report.lines
        assert report.lines[-1] == "finished"
        # Every ID the worker was given, before or after a crash, is still the registry's.
        assert len(report.given) > 0
        _oracle(settings, batches, works, complete=True, given=report.given)
    finally:
        drop_database(settings)
