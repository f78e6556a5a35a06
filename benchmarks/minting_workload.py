"""Concurrent minting workloads, shared by the concurrency benchmark, the reliability tests and
`make stress`.

The keys look like the catalogue's: every work has a Sierra identifier; 40% were migrated to Axiell
Collections and declare the Sierra one as predecessor; a quarter of those (a tenth of all works)
moved on to Folio and declare the Axiell one (a chain); works carry items and images, and
subjects are shared between works, so concurrent batches overlap on hot keys as real reindexes
do.

Worker processes are started with the `spawn` method and open their own connections: nothing is
shared with the parent but the settings. Each worker reports every ID it was given and every
predecessor it declared, so the SQL oracle (`tests/registry_invariants.py`) can check them.

Run as a module it is the minting process the crash tests kill:
`python -m benchmarks.minting_workload crash-worker --batches N --start S` (settings from RDS_*).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from idminter_pipeline.core.canonical_ids import generate_canonical_ids_bulk
from idminter_pipeline.core.errors import RegistryContentionError, RegistryUnavailableError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest

SHARED_SUBJECTS = 400
POOL_CHUNK = 2_000

# Errors that mean "the server went away" for longer than the minter's own retries last, which a
# caller survives by reconnecting and retrying the same (idempotent) batch; anything else is a
# failed batch.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RegistryUnavailableError,
    RegistryContentionError,
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    ConnectionError,
)


def _key(ontology: str, system: str, value: str) -> SourceIdentifier:
    return SourceIdentifier(ontology, system, value)


def work_requests(work: int, *, shared_subjects: bool = True) -> list[MintRequest]:
    """The identifiers one work document yields (about six), with its predecessor chain."""
    sierra = _key("Work", "sierra-system-number", f"b{work:07d}")
    requests = [MintRequest(sierra)]
    if work % 5 in (0, 1):
        axiell = _key("Work", "axiell-collections-id", f"AC-{work}")
        requests.append(MintRequest(axiell, sierra))
        if work % 10 == 0:
            requests.append(MintRequest(_key("Work", "folio-instance", f"in{work:011d}"), axiell))
    requests += [
        MintRequest(_key("Item", "sierra-system-number", f"i{work:07d}{copy}")) for copy in (1, 2)
    ]
    if work % 3 == 0:
        requests.append(MintRequest(_key("Image", "mets-image", f"b{work:07d}_0001.jp2")))
    if shared_subjects:
        requests.append(MintRequest(_key("Subject", "lc-subjects", f"sh{work % SHARED_SUBJECTS}")))
    else:
        requests.append(MintRequest(_key("Subject", "label-derived", f"subject of {work}")))
    return requests


def batch_requests(works: Iterable[int], *, shared_subjects: bool = True) -> list[MintRequest]:
    return [r for work in works for r in work_requests(work, shared_subjects=shared_subjects)]


def overlapping_batch(seed: int, batch: int, works: int, key_space: int) -> list[int]:
    """Works drawn from one key space shared by every batch, so batches overlap. A batch's works
    depend on its number only, so any split over processes mints the same keys."""
    rng = random.Random(f"{seed}/{batch}")
    return rng.sample(range(key_space), works)


def disjoint_batch(batch: int, works: int) -> range:
    """Works that belong to this batch alone, so a partial batch is visible in the registry."""
    return range(batch * works, (batch + 1) * works)


def fill_pool(settings: DatabaseSettings, count: int) -> int:
    """Add `count` free IDs to the pool (the pool helper's top-up is not needed for this)."""
    added = 0
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            while added < count:
                ids = generate_canonical_ids_bulk(min(POOL_CHUNK, count - added))
                cursor.executemany(
                    "INSERT IGNORE INTO canonical_ids (CanonicalId) VALUES (%s)",
                    [(canonical_id,) for canonical_id in ids],
                )
                added += cursor.rowcount
                conn.commit()
    finally:
        conn.close()
    return added


def clear_registry(settings: DatabaseSettings) -> None:
    """Empty every registry table (not yoyo's bookkeeping) between benchmark levels."""
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                "AND table_type = 'BASE TABLE' AND table_name NOT LIKE %s "
                "AND table_name <> 'yoyo_lock'",
                ("\\_yoyo\\_%",),
            )
            tables = [name for (name,) in cursor.fetchall()]
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                cursor.execute(f"TRUNCATE TABLE `{table}`")
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        conn.commit()
    finally:
        conn.close()


def reset_run(settings: DatabaseSettings, store_path: Path, free_ids: int) -> None:
    """The registry emptied with `free_ids` in the pool, and no identified work in the SQLite
    works store at `store_path`: where each measured pipeline run starts."""
    clear_registry(settings)
    fill_pool(settings, free_ids)
    with sqlite3.connect(store_path) as db:
        db.execute("DELETE FROM identified_works")
    db.close()


@dataclass(frozen=True)
class WorkerSpec:
    settings: DatabaseSettings
    worker: int
    batches: Sequence[int]
    works_per_batch: int
    key_space: int
    seed: int = 83


@dataclass
class WorkerReport:
    worker: int
    batches_ok: int = 0
    batches_failed: int = 0
    identifiers: int = 0
    retries: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    batch_seconds: list[float] = field(default_factory=list)
    # str(source) -> canonical ID, for every source this worker was answered about.
    given: dict[str, str] = field(default_factory=dict)
    # (str(successor), str(predecessor)) declared by this worker.
    declared: set[tuple[str, str]] = field(default_factory=set)
    conflicting_answers: list[str] = field(default_factory=list)


def mint_batches(spec: WorkerSpec, barrier: Any | None = None) -> WorkerReport:
    """Mint the spec's batches on this process's own connection; never raises for a batch."""
    report = WorkerReport(spec.worker)
    minter = Minter(lambda: connect(spec.settings))
    batches = [
        batch_requests(overlapping_batch(spec.seed, b, spec.works_per_batch, spec.key_space))
        for b in spec.batches
    ]
    # Open the connection before the clock starts (the lookup of one absent key).
    minter.lookup_ids([_key("Work", "warm-up", f"worker-{spec.worker}")])
    if barrier is not None:
        barrier.wait(timeout=300)
    started = time.monotonic()
    for requests in batches:
        for request in requests:
            if request.predecessor is not None:
                report.declared.add((str(request.source), str(request.predecessor)))
        batch_started = time.monotonic()
        try:
            results = minter.mint_ids(requests, job_id=f"worker-{spec.worker}")
        except Exception as error:
            report.batches_failed += 1
            report.failures.append(f"{type(error).__name__}: {error}"[:500])
            continue
        report.batch_seconds.append(time.monotonic() - batch_started)
        report.batches_ok += 1
        report.identifiers += len(results)
        for source, result in results.items():
            report.outcomes[str(result.outcome)] += 1
            key = str(source)
            previous = report.given.setdefault(key, result.canonical_id)
            if previous != result.canonical_id:
                report.conflicting_answers.append(f"{key}: {previous} then {result.canonical_id}")
    report.retries = minter.stats.retries
    report.reconnects = minter.stats.reconnects
    minter.close()
    report.seconds = time.monotonic() - started
    return report


def _worker_main(spec: WorkerSpec, barrier: Any, results: Any) -> None:
    try:
        results.put(mint_batches(spec, barrier))
    except BaseException as error:  # report, so the parent never waits for a dead worker
        report = WorkerReport(spec.worker, batches_failed=len(spec.batches))
        report.failures.append(f"worker crashed: {type(error).__name__}: {error}"[:500])
        results.put(report)
        raise


@dataclass
class ConcurrentRun:
    processes: int
    seconds: float
    reports: list[WorkerReport]
    specs: list[WorkerSpec]

    @property
    def identifiers(self) -> int:
        return sum(r.identifiers for r in self.reports)

    @property
    def batches_ok(self) -> int:
        return sum(r.batches_ok for r in self.reports)

    @property
    def batches_failed(self) -> int:
        return sum(r.batches_failed for r in self.reports)

    @property
    def retries(self) -> int:
        return sum(r.retries for r in self.reports)

    @property
    def failures(self) -> list[str]:
        return [f"worker {r.worker}: {f}" for r in self.reports for f in r.failures]

    def given(self) -> list[tuple[str, str]]:
        return [(source, cid) for r in self.reports for source, cid in r.given.items()]

    def declared(self) -> set[tuple[str, str]]:
        return {edge for r in self.reports for edge in r.declared}

    def requested(self) -> dict[str, list[SourceIdentifier]]:
        """Batch label -> the sources it asked for (rebuilt from the seeds, not reported)."""
        return {
            f"worker {spec.worker} batch {batch}": [
                request.source
                for request in batch_requests(
                    overlapping_batch(spec.seed, batch, spec.works_per_batch, spec.key_space)
                )
            ]
            for spec in self.specs
            for batch in spec.batches
        }


def run_concurrent(
    settings: DatabaseSettings,
    *,
    processes: int,
    total_batches: int,
    works_per_batch: int,
    key_space: int,
    seed: int = 83,
    timeout: float = 600,
) -> ConcurrentRun:
    """`total_batches` overlapping batches spread over `processes` spawned minting processes.

    The clock starts when every process has imported, connected and built its batches (a
    barrier), and stops when the last one reports.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    workers = []
    specs = []
    for worker in range(processes):
        spec = WorkerSpec(
            settings=settings,
            worker=worker,
            batches=list(range(worker, total_batches, processes)),
            works_per_batch=works_per_batch,
            key_space=key_space,
            seed=seed,
        )
        specs.append(spec)
        process = context.Process(target=_worker_main, args=(spec, barrier, results))
        process.start()
        workers.append(process)
    reports: list[WorkerReport] = []
    try:
        barrier.wait(timeout=300)
        started = time.monotonic()
        deadline = started + timeout
        while len(reports) < processes:
            try:
                reports.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise TimeoutError(
                    f"{processes - len(reports)} of {processes} minting processes did not "
                    f"finish within {timeout}s"
                ) from None
        seconds = time.monotonic() - started
    finally:
        for process in workers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    return ConcurrentRun(processes, seconds, sorted(reports, key=lambda r: r.worker), specs)


# --- the killable minting process -------------------------------------------------------------


def _print(*parts: object) -> None:
    print(*parts, flush=True)


def crash_worker(argv: Sequence[str] | None = None) -> int:
    """Mint disjoint batches `start..batches-1` in order, announcing each on stdout.

    Lines: `ready`, `begin B`, `given B <JSON source -> ID>`, `done B <identifiers> <reconnects
    so far>`, `error B <type>`
    (the server stayed away longer than the minter's own retries; retried here),
    `failed B <type>: <message>` (exit 3), `finished`.
    """
    parser = argparse.ArgumentParser(prog="minting_workload crash-worker")
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--works", type=int, default=40, help="works per batch")
    parser.add_argument(
        "--retry-unavailable",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep retrying a batch this long while the server is unreachable",
    )
    args = parser.parse_args(argv)
    settings = DatabaseSettings.from_env()
    batches = [
        batch_requests(disjoint_batch(b, args.works), shared_subjects=False)
        for b in range(args.batches)
    ]
    minter = Minter(lambda: connect(settings))
    # Reconnects the minter made itself (it retries lost connections inside a call), summed
    # over the minters this process replaced after a call failed.
    reconnects = 0
    _print("ready")
    for batch in range(args.start, args.batches):
        give_up = time.monotonic() + args.retry_unavailable
        while True:
            _print("begin", batch)
            try:
                results = minter.mint_ids(batches[batch], job_id=f"crash-{os.getpid()}")
            except CONNECTION_ERRORS as error:
                if time.monotonic() > give_up:
                    _print("failed", batch, f"{type(error).__name__}: {error}")
                    return 3
                _print("error", batch, type(error).__name__)
                time.sleep(0.3)
                reconnects += minter.stats.reconnects
                minter.close()
                minter = Minter(lambda: connect(settings))
                continue
            except Exception as error:
                _print("failed", batch, f"{type(error).__name__}: {error}")
                return 3
            given = {str(source): result.canonical_id for source, result in results.items()}
            _print("given", batch, json.dumps(given, ensure_ascii=False))
            _print("done", batch, len(results), reconnects + minter.stats.reconnects)
            break
    _print("finished")
    return 0


def crash_batches(batches: int, works: int) -> dict[int, list[MintRequest]]:
    """The crash worker's batches, for the parent's checks."""
    return {
        b: batch_requests(disjoint_batch(b, works), shared_subjects=False) for b in range(batches)
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["crash-worker"]:
        sys.exit("usage: python -m benchmarks.minting_workload crash-worker --batches N ...")
    sys.exit(crash_worker(sys.argv[2:]))
