"""Resumable full runs ride out a lost registry like the minter does.

`idminter mint --full --job-id J` in a real process, with its private MariaDB SIGKILLed for 7 s
mid-run and started again, finishes: exit 0, every work written, the checkpoint counting each
batch once. The Lambda's `{"full": true, "jobId": ...}` started while that server is down waits for
it. On the shared server: a checkpoint whose session was killed takes its job's lock again, and
stops if another run took the job meanwhile; recording a batch twice counts it once.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_helpers import (
    cli_env,
    fetch_all,
    registry_on_private_server,
)
from registry_invariants import check_registry
from works_helpers import numbered_works

from benchmarks.crash_runs import crash_server
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.local_servers.mariadb import ensure_server, stop_server
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.outage import OUTAGE_ENV
from idminter_pipeline.works.checkpoints import JobAlreadyRunningError, RunCheckpoints
from idminter_pipeline.works.stores import SqliteWorksStore
from idminter_pipeline.works.stores.base import ScanPosition

VENV_BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parent.parent
WORKS = 400
BATCH = 4
DOWN_SECONDS = 7


@pytest.fixture
def private_registry(private_server) -> Iterator[tuple[DatabaseSettings, object]]:
    server, paths = private_server
    with registry_on_private_server(server, paths, "checkpoint_", WORKS * 3) as settings:
        yield settings, paths


def _env(settings: DatabaseSettings, store_path: Path) -> dict[str, str]:
    env = cli_env(settings, WORKS_STORE_PATH=str(store_path), ELASTICSEARCH_URL="")
    env.pop(OUTAGE_ENV, None)  # the default bound, 60 s
    return env


def _checkpoint(settings: DatabaseSettings, job_id: str) -> tuple | None:
    rows = fetch_all(
        settings,
        "SELECT WorksRead, WorksWritten, Batches, FinishedAt IS NOT NULL "
        "FROM works_run_checkpoints WHERE JobId = %s",
        (job_id.encode(),),
    )
    return rows[0] if rows else None


def _written(store_path: Path) -> set[str]:
    with SqliteWorksStore(store_path) as store, store._guarded("read from") as conn:
        return {row[0] for row in conn.execute("SELECT source_id FROM identified_works")}


def test_mint_full_with_a_job_id_rides_out_a_killed_server(private_registry, tmp_path):
    settings, paths = private_registry
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(numbered_works(WORKS))
    run = subprocess.Popen(
        [
            str(VENV_BIN / "idminter"),
            "mint",
            "--full",
            "--job-id",
            "nightly",
            "--batch-size",
            str(BATCH),
        ],
        env=_env(settings, store_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )
    # Kill the server once the run has checkpointed a few batches (a state, not a duration).
    deadline = time.monotonic() + 120
    while (_checkpoint(settings, "nightly") or (0, 0, 0, 0))[2] < 3:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    crash_server(paths)
    killed_at = time.monotonic()
    time.sleep(DOWN_SECONDS)
    ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
    stdout, stderr = run.communicate(timeout=600)

    assert run.returncode == 0, stderr[-3000:]
    assert "registry unreachable while" in stderr  # it did meet the outage, and waited
    assert time.monotonic() - killed_at >= DOWN_SECONDS
    summary = json.loads(stdout)
    assert summary["works_failed"] == 0
    assert _written(store_path) == {w.id for w in numbered_works(WORKS)}
    # Each batch counted once, however the outage fell between a commit and its answer.
    read, written, batches, finished = _checkpoint(settings, "nightly")
    assert (read, written, batches, finished) == (WORKS, WORKS, WORKS // BATCH, 1)
    check_registry(settings).assert_ok()


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def test_the_lambdas_full_run_waits_for_a_registry_down_at_start(private_registry, tmp_path):
    settings, paths = private_registry
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(numbered_works(WORKS)[:20])
    stop_server(paths)  # down before the invocation starts
    invoke = (
        "import json, logging, sys\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from idminter_pipeline.aws_lambda.handler import handler\n"
        # Into a file: the handler's own log and metric lines (EMF) go to stdout.
        "answer = handler({'full': True, 'jobId': 'lambda-full'})\n"
        "with open(sys.argv[1], 'w') as out: json.dump(answer, out)\n"
    )
    answer_path = tmp_path / "answer.json"
    lambda_run = subprocess.Popen(
        [sys.executable, "-c", invoke, str(answer_path)],
        env=_env(settings, store_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )
    stderr_lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(lambda_run.stderr, stderr_lines), daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while not any("registry unreachable while" in line for line in seen):
        assert lambda_run.poll() is None, "".join(seen)
        assert time.monotonic() < deadline, "".join(seen)
        try:
            seen.append(stderr_lines.get(timeout=0.5))
        except queue.Empty:
            continue
    ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
    lambda_run.stdout.read()
    assert lambda_run.wait(timeout=600) == 0, "".join(seen)
    answer = json.loads(answer_path.read_text())
    assert answer["failures"] == []
    assert answer["jobId"] == "lambda-full"
    assert _checkpoint(settings, "lambda-full") == (20, 20, 1, 1)
    assert _written(store_path) == {w.id for w in numbered_works(WORKS)[:20]}


# -- on the shared server -------------------------------------------------------------------------


def _kill_session(registry: DatabaseSettings, thread_id: int) -> None:
    """Kill a session and wait until it is gone: KILL returns before the killed session has
    ended and released its locks."""
    killer = connect(registry)
    try:
        with killer.cursor() as cursor:
            cursor.execute("KILL CONNECTION %s", (thread_id,))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                    (thread_id,),
                )
                if cursor.fetchone() == (0,):
                    return
                time.sleep(0.05)
            pytest.fail(f"session {thread_id} was still there 30 s after KILL")
    finally:
        killer.close()


def test_a_checkpoint_whose_session_died_retakes_its_job(registry, connect_registry):
    first = RunCheckpoints(connect_registry, outage_seconds=5)
    first.begin("retake", "store-a")
    first.record(ScanPosition(1, "Work[s/1]"), works_read=4, works_written=4, works_failed=0)
    _kill_session(registry, first._conn.thread_id())
    # The session, and its lock, are gone: the next record reconnects and takes the job again.
    first.record(ScanPosition(2, "Work[s/2]"), works_read=4, works_written=3, works_failed=1)
    with RunCheckpoints(connect_registry) as second, pytest.raises(JobAlreadyRunningError):
        second.begin("retake", "store-a")
    # Recording the same batch again (its commit applied, its answer lost) counts it once.
    first.record(ScanPosition(2, "Work[s/2]"), works_read=4, works_written=3, works_failed=1)
    first.close()
    assert _checkpoint(registry, "retake") == (8, 7, 2, 0)


def test_a_run_that_lost_its_job_to_another_stops(registry, connect_registry):
    first = RunCheckpoints(connect_registry, outage_seconds=5)
    first.begin("taken", "store-a")
    _kill_session(registry, first._conn.thread_id())
    with RunCheckpoints(connect_registry) as second:
        second.begin("taken", "store-a")  # the lock was free while the first was away
        with pytest.raises(JobAlreadyRunningError):
            first.record(
                ScanPosition(1, "Work[s/1]"), works_read=1, works_written=1, works_failed=0
            )
    first.close()
    assert _checkpoint(registry, "taken") == (0, 0, 0, 0)
