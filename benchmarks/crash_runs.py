"""Crash drills for the reliability tests and `make stress`: kill -9 a minting process at random
points, and crash or restart the database server under a running minter.

Each drill drives `python -m benchmarks.minting_workload crash-worker` (a separate process with
its own connection, settings passed through RDS_* so no password sits on a command line) and
returns what happened; the caller checks the registry with the SQL oracle.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from idminter_pipeline.core.settings import DatabaseSettings, project_root
from idminter_pipeline.local_servers.mariadb import LocalServerPaths, ensure_server, stop_server

READY_TIMEOUT = 120.0


def worker_env(settings: DatabaseSettings) -> dict[str, str]:
    env = {
        **os.environ,
        **settings.as_environment(),
    }
    env.pop("RDS_SECRET_NAME", None)
    return env


class CrashWorker:
    """A running crash worker whose stdout lines arrive on a queue (never a blocking read)."""

    def __init__(self, settings: DatabaseSettings, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.minting_workload", "crash-worker", *args],
            cwd=project_root(),
            env=worker_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            # A worker killed while printing leaves a last line without its newline: it never
            # finished saying it, so it says nothing (a half `given` line is not JSON).
            if line.endswith("\n"):
                self._queue.put(line.strip())
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str | None:
        """The first new line matching `predicate`, or None if the process ended first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise TimeoutError(
                    f"crash worker silent for {timeout}s; saw {self.lines[-5:]}"
                ) from None
            if line is None:
                return None
            self.lines.append(line)
            if line.startswith("failed"):
                raise RuntimeError(f"crash worker failed: {line}\n{self.stderr()}")
            if predicate(line):
                return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def drain(self) -> None:
        """After the process has ended: collect the lines it printed before it died."""
        self._reader.join(timeout=10)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()[-3000:]

    def done(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith("done ")]

    def given(self) -> list[tuple[str, str]]:
        """Every (source, ID) the worker printed as committed."""
        return [
            (source, canonical_id)
            for line in self.lines
            if line.startswith("given ")
            for source, canonical_id in json.loads(line.split(" ", 2)[2]).items()
        ]

    def killed_inside_a_mint_call(self) -> bool:
        events = [line for line in self.lines if line.split()[0] in ("begin", "done", "error")]
        return bool(events) and events[-1].startswith("begin")


@dataclass
class KillReport:
    kills: int = 0
    inside_mint_call: int = 0
    batches_committed_between_kills: list[int] = field(default_factory=list)
    checks: int = 0
    # (source, ID) pairs the killed workers had been given before they died.
    given: list[tuple[str, str]] = field(default_factory=list)
    # Batches some worker began (the only ones that can be partly written).
    begun: set[int] = field(default_factory=set)


def kill_at_random_points(
    settings: DatabaseSettings,
    *,
    batches: int,
    works: int,
    kills: int,
    rng: random.Random,
    after_each_kill: Callable[[KillReport], None] | None = None,
    max_delay: float = 0.15,
) -> KillReport:
    """Start a minting process, SIGKILL it at a random point, check, repeat `kills` times.

    The kill comes a random 0..`max_delay` seconds after the worker announced its 1st to 3rd
    batch, so most land inside a mint call (some between calls or in the commit).
    `after_each_kill(report)` runs the caller's checks while no minter runs. Each
    restart resumes at the first batch not yet committed; batches wrap around when all are done.
    """
    report = KillReport()
    start = 0
    while report.kills < kills:
        worker = CrashWorker(
            settings, "--batches", str(batches), "--start", str(start), "--works", str(works)
        )
        if worker.wait_for(lambda line: line == "ready", READY_TIMEOUT) is None:
            raise RuntimeError(f"crash worker exited before ready: {worker.stderr()}")
        begins = rng.randint(1, 3)
        seen = 0
        finished = False
        while seen < begins:
            line = worker.wait_for(lambda ln: ln.startswith("begin") or ln == "finished", 120)
            if line is None or line == "finished":
                finished = True
                break
            seen += 1
        if not finished:
            time.sleep(rng.uniform(0, max_delay))
        worker.kill()
        worker.drain()
        report.kills += 1
        report.inside_mint_call += worker.killed_inside_a_mint_call()
        done = worker.done()
        report.batches_committed_between_kills.append(len(done))
        report.given += worker.given()
        report.begun.update(
            int(line.split()[1]) for line in worker.lines if line.startswith("begin ")
        )
        if after_each_kill is not None:
            after_each_kill(report)
            report.checks += 1
        start = (max(done) + 1 if done else start) % batches
    return report


def complete_run(settings: DatabaseSettings, *, batches: int, works: int) -> CrashWorker:
    """Run the whole workload to the end (re-running what was done is idempotent)."""
    worker = CrashWorker(settings, "--batches", str(batches), "--works", str(works))
    line = worker.wait_for(lambda ln: ln == "finished", timeout=600)
    worker.process.wait(timeout=60)
    worker.drain()
    if line != "finished" or worker.process.returncode != 0:
        raise RuntimeError(f"the completing run did not finish: {worker.lines[-5:]}")
    return worker


def _reap(pid: int) -> None:
    """Wait for a SIGKILLed server that this process started (else it lingers as a zombie)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # not our child, or already reaped by subprocess' cleanup
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def crash_server(paths: LocalServerPaths) -> int:
    """SIGKILL the private server (no clean shutdown: InnoDB must recover on restart)."""
    pid = int(paths.pid_file.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return pid


@dataclass
class RestartReport:
    restarts: list[str] = field(default_factory=list)
    # Calls that failed because the server was away (the worker retried them) ...
    connection_errors: int = 0
    # ... and reconnects the minter made inside calls that then succeeded.
    minter_reconnects: int = 0
    batches_done_before_first_restart: int = 0
    lines: list[str] = field(default_factory=list)


def restart_server_mid_run(
    settings: DatabaseSettings,
    paths: LocalServerPaths,
    *,
    batches: int,
    works: int,
    restarts: list[str],
    batches_between: int = 3,
    downtime: float = 1.0,
) -> RestartReport:
    """Mint into the private server at `paths` and, every `batches_between` committed batches,
    `"crash"` (SIGKILL) or `"stop"` (clean shutdown) it and start it again. The worker keeps
    retrying a batch while the server is away; the run must still finish."""
    report = RestartReport()
    worker = CrashWorker(
        settings,
        "--batches",
        str(batches),
        "--works",
        str(works),
        "--retry-unavailable",
        "180",
    )
    try:
        if worker.wait_for(lambda line: line == "ready", READY_TIMEOUT) is None:
            raise RuntimeError(f"crash worker exited before ready: {worker.stderr()}")
        for kind in restarts:
            for _ in range(batches_between):
                if worker.wait_for(lambda ln: ln.startswith("done"), 300) is None:
                    raise RuntimeError(f"the worker finished before the {kind} restart")
            if not report.restarts:
                report.batches_done_before_first_restart = len(worker.done())
            if kind == "crash":
                crash_server(paths)
            else:
                stop_server(paths)
            time.sleep(downtime)
            ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
            report.restarts.append(kind)
        if worker.wait_for(lambda ln: ln == "finished", 600) is None:
            raise RuntimeError(f"the worker died: {worker.lines[-5:]} {worker.stderr()}")
        worker.process.wait(timeout=60)
    finally:
        worker.kill()
        worker.drain()
    report.lines = worker.lines
    report.given = worker.given()
    report.connection_errors = sum(line.startswith("error") for line in worker.lines)
    done = [line.split() for line in worker.lines if line.startswith("done ")]
    report.minter_reconnects = int(done[-1][3]) if done else 0
    return report
