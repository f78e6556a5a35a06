"""What Dagster retries, by failure kind, and that each final failure pages once: a real
`dagster-daemon` (sensors, run retries, the default run launcher) on a temporary DAGSTER_HOME
whose `run_retries` are deploy/dagster.yaml's, serving tests/run_retry_location.py.

- The project's replenishment job against a registry that is away: its step meets a
  `RegistryOutageError`, is retried in the same run (IDMINTER_OUTAGE_STEP_RETRIES), then fails
  for good: one run, one page.
- A job that fails on its works: not retried at all, one run, one page.
- A job whose run fails before any step on its first launch (as a lost ECS task would): the
  daemon re-executes it, the re-execution succeeds, and nobody is paged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.tags import WILL_RETRY_TAG
from dagster_helpers import end_process_groups
from db_helpers import free_port

from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.defs.alerts.failures import ALERT_INTERVAL_ENV, failure_alert_interval
from idminter_pipeline.defs.retries import (
    OUTAGE_STEP_RETRIES_ENV,
    OUTAGE_STEP_RETRY_SECONDS_ENV,
    OutageRetries,
)
from idminter_pipeline.registry.outage import OUTAGE_ENV

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STEP_RETRIES = 2
# The failure sensors tick every ALERT_INTERVAL_SECONDS here; give them a few ticks after the
# last run, so a second page for any run would have been sent.
ALERT_INTERVAL_SECONDS = 2
SENSOR_SETTLE_SECONDS = 4 * ALERT_INTERVAL_SECONDS
DEADLINE_SECONDS = 300


def test_the_deployed_instance_leaves_step_failures_to_the_steps():
    retries = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["run_retries"]
    assert retries == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


def test_the_failure_sensors_tick_at_the_configured_interval_and_bad_values_are_named():
    assert failure_alert_interval({}) == 30
    assert failure_alert_interval({ALERT_INTERVAL_ENV: "5"}) == 5
    for bad in ("0", "2.5", "3601"):
        with pytest.raises(InvalidSettingError, match=ALERT_INTERVAL_ENV):
            failure_alert_interval({ALERT_INTERVAL_ENV: bad})


def test_the_step_retry_settings_come_from_the_environment_and_bad_values_are_named():
    assert OutageRetries.from_env({}) == OutageRetries(2, 60)
    assert OutageRetries.from_env({OUTAGE_STEP_RETRIES_ENV: "0"}).retries == 0
    for name, bad in ((OUTAGE_STEP_RETRIES_ENV, "11"), (OUTAGE_STEP_RETRY_SECONDS_ENV, "-1")):
        with pytest.raises(InvalidSettingError, match=name):
            OutageRetries.from_env({name: bad})


@pytest.fixture
def daemon(tmp_path) -> Iterator[tuple[Path, Path]]:
    """A running `dagster-daemon` on a DAGSTER_HOME of its own: (home, work directory)."""
    home, workdir = tmp_path / "dagster_home", tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    deployed = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    instance = {"run_retries": deployed["run_retries"], "telemetry": {"enabled": False}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    workspace = {
        "load_from": [
            {
                "python_file": {
                    "relative_path": str(ROOT / "tests" / "run_retry_location.py"),
                    "working_directory": str(ROOT),
                    "location_name": "retries",
                }
            }
        ]
    }
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    # The storage is created here, once: the daemon and its code server starting together
    # would both create it.
    dg.DagsterInstance.from_config(str(home)).dispose()
    environment = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(workdir),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}",
        "RETRY_TEST_DIR": str(workdir),
        "RETRY_TEST_REGISTRY_PORT": str(free_port()),  # nothing listens: the registry is away
        OUTAGE_ENV: "1",
        OUTAGE_STEP_RETRIES_ENV: str(STEP_RETRIES),
        OUTAGE_STEP_RETRY_SECONDS_ENV: "1",
        ALERT_INTERVAL_ENV: str(ALERT_INTERVAL_SECONDS),
    }
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")],
        env=environment,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield home, workdir
    finally:
        # The daemon leads its process group: its code server and the runs it launched.
        end_process_groups([process])
        log.close()


def _runs_by_job(instance: dg.DagsterInstance) -> dict[str, list[dg.DagsterRun]]:
    runs: dict[str, list[dg.DagsterRun]] = {}
    for run in reversed(instance.get_runs()):  # oldest first
        runs.setdefault(run.job_name, []).append(run)
    return runs


FINAL_FAILURES = ("pool_replenishment_job", "failing_works_job")


def _pages(workdir: Path) -> list[dict]:
    alerts_log = workdir / "alerts.log"
    if not alerts_log.exists():
        return []
    complete = alerts_log.read_text().split("\n")[:-1]  # a line being written is not yet one
    return [json.loads(line) for line in complete]


def _settled(runs: dict[str, list[dg.DagsterRun]]) -> bool:
    finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
    return (
        all(r.status in finished for job in runs.values() for r in job)
        and len(runs.get("pool_replenishment_job", [])) >= 1
        and len(runs.get("failing_works_job", [])) >= 1
        and any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs.get("flaky_start_job", []))
    )


@pytest.mark.slow(seconds=60)
def test_each_failure_kind_is_retried_as_decided_and_pages_once(daemon, tmp_path):
    home, workdir = daemon
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + DEADLINE_SECONDS
        runs = _runs_by_job(instance)
        while not _settled(runs):
            assert time.monotonic() < deadline, (
                f"runs did not settle: {runs}\n{(tmp_path / 'daemon.log').read_text()[-4000:]}"
            )
            time.sleep(2)
            runs = _runs_by_job(instance)
        finals = {run.run_id for job in FINAL_FAILURES for run in runs[job]}
        # Each final failure is paged by a sensor tick after it ended, which on two loaded
        # cores can come well after the run: wait for those pages, then a few ticks more, so a
        # second page for any run would have been sent.
        while not finals <= {alert["run_id"] for alert in _pages(workdir)}:
            assert time.monotonic() < deadline, (
                f"no page for some of {finals}: {_pages(workdir)}\n"
                f"{(tmp_path / 'daemon.log').read_text()[-4000:]}"
            )
            time.sleep(1)
        time.sleep(SENSOR_SETTLE_SECONDS)
        runs = _runs_by_job(instance)

        # The registry outage: one run, its step tried 1 + STEP_RETRIES times, not re-executed.
        (outage,) = runs["pool_replenishment_job"]
        assert outage.status == dg.DagsterRunStatus.FAILURE
        assert outage.tags[WILL_RETRY_TAG] == "false"
        retried = instance.all_logs(outage.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert len(retried) == STEP_RETRIES
        # The failed works: one run, no step retry, not re-executed.
        (works,) = runs["failing_works_job"]
        assert works.status == dg.DagsterRunStatus.FAILURE
        assert works.tags[WILL_RETRY_TAG] == "false"
        assert not instance.all_logs(works.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        # The run that failed before its steps: re-executed once, which succeeded.
        first, again = runs["flaky_start_job"]
        assert (first.status, again.status) == (
            dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.SUCCESS,
        )
        assert first.tags[WILL_RETRY_TAG] == "true"
        assert again.root_run_id == first.run_id

    paged = _pages(workdir)
    assert sorted(alert["run_id"] for alert in paged) == sorted([outage.run_id, works.run_id])
    outage_alert = next(alert for alert in paged if alert["run_id"] == outage.run_id)
    # The innermost cause of the last attempt: the registry refused the connection.
    assert outage_alert["cause"].startswith("RegistryUnreachableError: cannot connect")
