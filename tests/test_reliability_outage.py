"""Registry outages ridden out: a private MariaDB is SIGKILLed for 30 s under a sequence of
`idminter mint-ids` calls in real processes, and the pool and lookups wait for a server that is
down when they start. Zero failed calls; the SQL oracle finds nothing lost or duplicated.

The server is a private one, started for this module on its own port and folder (as in
`test_reliability_crashes.py`); the shared server is never touched.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from db_helpers import registry_on_private_server
from registry_invariants import check_registry

from benchmarks.crash_runs import crash_server, worker_env
from benchmarks.minting_workload import batch_requests, disjoint_batch, fill_pool
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.local_servers.mariadb import LocalServerPaths, ensure_server, stop_server
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.registry.outage import OUTAGE_ENV
from idminter_pipeline.registry.pool import pool_health, top_up

VENV_BIN = Path(sys.executable).parent
OUTAGE_SECONDS = 30
SEQUENCES = 2  # two sequences of calls at once, so the kill finds calls in flight
CALLS_PER_SEQUENCE = 8
WORKS = 20  # about 110 identifiers per call


@pytest.fixture
def private_registry(private_server) -> Iterator[tuple[DatabaseSettings, LocalServerPaths]]:
    server, paths = private_server
    with registry_on_private_server(server, paths, "outage_") as settings:
        yield settings, paths


@dataclass
class Call:
    batch: int
    started: float
    ended: float
    returncode: int
    stdout: str
    stderr: str


def _mint_ids(settings: DatabaseSettings, batch: int) -> Call:
    """One `idminter mint-ids` process for one batch of catalogue-like works."""
    lines = [
        json.dumps(
            {
                "source": str(request.source),
                "predecessor": str(request.predecessor) if request.predecessor else None,
            }
        )
        for request in batch_requests(disjoint_batch(batch, WORKS), shared_subjects=False)
    ]
    started = time.monotonic()
    result = subprocess.run(
        [str(VENV_BIN / "idminter"), "mint-ids", "--job-id", f"outage-{batch}"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        # The default bound (60 s) applies: the environment does not set it.
        env={k: v for k, v in worker_env(settings).items() if k != OUTAGE_ENV},
        timeout=600,
        check=False,
    )
    return Call(batch, started, time.monotonic(), result.returncode, result.stdout, result.stderr)


@pytest.mark.slow(seconds=40)
def test_mint_ids_calls_ride_out_a_30_second_server_crash(private_registry):
    settings, paths = private_registry
    fill_pool(settings, SEQUENCES * CALLS_PER_SEQUENCE * WORKS * 6)
    calls: list[Call] = []
    done = threading.Condition()

    def sequence(first_batch: int) -> None:
        for batch in range(first_batch, first_batch + CALLS_PER_SEQUENCE):
            call = _mint_ids(settings, batch)
            with done:
                calls.append(call)
                done.notify_all()

    with ThreadPoolExecutor(SEQUENCES) as drivers:
        running = [drivers.submit(sequence, n * CALLS_PER_SEQUENCE) for n in range(SEQUENCES)]
        with done:
            assert done.wait_for(lambda: len(calls) >= SEQUENCES, timeout=300)
        crash_server(paths)  # SIGKILL: InnoDB recovers on restart
        killed_at = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
        back_at = time.monotonic()
        for driver in running:
            driver.result(timeout=900)

    print(f"server down {back_at - killed_at:.1f}s; {len(calls)} calls")
    failed = [(c.batch, c.returncode, c.stderr[-500:]) for c in calls if c.returncode != 0]
    assert failed == []
    assert sorted(c.batch for c in calls) == list(range(SEQUENCES * CALLS_PER_SEQUENCE))
    # Calls were in flight across the outage and waited for the server rather than failing.
    rode_out = [c for c in calls if c.started < back_at and c.ended > back_at]
    assert len(rode_out) >= 1, [(c.batch, c.started - killed_at, c.ended - back_at) for c in calls]
    assert back_at - killed_at >= OUTAGE_SECONDS

    given: list[tuple[str, str]] = []
    outcomes: dict[str, int] = {}
    for call in calls:
        for line in call.stdout.splitlines():
            answer = json.loads(line)
            given.append((answer["source"], answer["canonical_id"]))
            outcomes[answer["outcome"]] = outcomes.get(answer["outcome"], 0) + 1
    requested = {
        str(b): [r.source for r in batch_requests(disjoint_batch(b, WORKS), shared_subjects=False)]
        for b in range(SEQUENCES * CALLS_PER_SEQUENCE)
    }
    report = check_registry(
        settings,
        given=given,
        declared=[
            (r.source, r.predecessor)
            for b in range(SEQUENCES * CALLS_PER_SEQUENCE)
            for r in batch_requests(disjoint_batch(b, WORKS), shared_subjects=False)
            if r.predecessor is not None
        ],
        requested=requested,
        atomic_batches=True,
        complete=True,
    )
    report.assert_ok()
    # Nothing lost or duplicated: every source answered once, mapped once; and the outcomes
    # printed match what was committed (one minted answer per assigned ID).
    assert len(given) == len({source for source, _ in given}) == report.counts["mappings"]
    assert outcomes.get("minted", 0) == report.counts["assigned"]


def test_the_pool_and_lookups_wait_for_a_server_that_is_down_when_they_start(
    private_registry, caplog
):
    settings, paths = private_registry
    fill_pool(settings, 100)
    factory = lambda: connect(settings)  # noqa: E731
    stop_server(paths)  # a clean shutdown: the server is down before any call starts
    caplog.set_level(logging.WARNING, logger="idminter_pipeline.registry.outage")
    with ThreadPoolExecutor(3) as threads:
        topping = threads.submit(top_up, factory, 500, writers=2, outage_seconds=300)
        health = threads.submit(pool_health, factory, outage_seconds=300)

        def lookup() -> dict:
            with Minter(factory, outage_seconds=300) as minter:
                return {"found": minter.lookup_ids(requested_sources), "stats": minter.stats}

        requested_sources = [
            r.source for r in batch_requests(disjoint_batch(0, 2), shared_subjects=False)
        ]
        looking = threads.submit(lookup)
        # Each of the three has failed at least once and is waiting (a state, not a duration).
        for _ in range(6000):
            waiting = {
                what
                for what in ("topping the pool", "reading pool health", "looking up")
                if any(f"while {what}" in record.getMessage() for record in caplog.records)
            }
            if len(waiting) == 3:
                break
            time.sleep(0.05)
        assert len(waiting) == 3, [record.getMessage() for record in caplog.records]
        ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
        report = topping.result(timeout=600)
        figures = health.result(timeout=600)
        looked_up = looking.result(timeout=600)
    assert report.free_after == 500
    assert figures.free + figures.assigned >= 100
    assert looked_up["found"] == {}
    assert looked_up["stats"].reconnects >= 1
