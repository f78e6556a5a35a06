"""A registry password rotated under every process that holds registry connections.

Sessions already open survive `ALTER USER`; what must not fail is every connection opened after
it: between the second and the fourth step of a rotation only `AWSPENDING` is right, after the
fourth only `AWSCURRENT`. Each test here rotates a real account on the test server with moto's
Secrets Manager in the middle of a process (`rotation_helpers.RotatingAccount`), and ends that
account's open sessions right after the password changes, so the process has to connect again at
the worst moment. The admin task's commands are rotated under in the ECS rehearsal, with exactly
the task definition's environment (tests/test_deploy_ecs_rehearsal.py).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest
from db_helpers import fetch_all
from rotation_helpers import RotatingAccount, rotating_account
from works_helpers import fill_pool, work

from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.registry import connection
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import SqliteWorksStore

ROOT = Path(__file__).resolve().parents[1]
CLI = "from idminter_pipeline.cli import main; main()"


@pytest.fixture
def account(aws_env, registry, monkeypatch) -> Iterator[RotatingAccount]:
    with rotating_account(
        registry, boto3.client("secretsmanager", region_name="eu-west-1")
    ) as rotating:
        for variable, value in rotating.environment().items():
            monkeypatch.setenv(variable, value)
        yield rotating


@pytest.fixture
def works_store(tmp_path, monkeypatch, connect_registry) -> Iterator[SqliteWorksStore]:
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    fill_pool(connect_registry, 5_000)
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        yield store


def test_the_lambda_mints_through_a_rotation(account, works_store):
    works_store.put_source([work("sierra-system-number", f"b{n}") for n in range(3)])

    def invoke(n: int) -> dict:
        return handler({"sourceIdentifiers": [f"sierra-system-number/b{n}"], "jobId": f"j{n}"})

    assert invoke(0)["processedIdentifiers"] == ["sierra-system-number/b0"]
    token = account.start_rotation()  # AWSCURRENT is stale now, only AWSPENDING works
    assert invoke(1)["processedIdentifiers"] == ["sierra-system-number/b1"]
    account.finish_rotation(token)
    assert invoke(2)["processedIdentifiers"] == ["sierra-system-number/b2"]
    assert works_store.count_identified() == 3


def test_a_full_run_with_a_job_id_rides_through_a_rotation(
    account, works_store, connect_registry, tmp_path
):
    """`idminter mint --full --job-id` as its own process; the rotation starts once its first
    checkpoint is written, its sessions are ended, and it finishes later in the run."""
    works_store.put_source(generate_works(3_000, seed=5))
    fill_pool(connect_registry, 40_000)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RDS_")},
        **account.environment(),
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "mint",
            "--full",
            "--job-id",
            "rot-1",
            "--batch-size",
            "100",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not fetch_all(
        account.server, "SELECT 1 FROM works_run_checkpoints WHERE JobId = 'rot-1'"
    ):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.05)
    token = account.start_rotation()
    time.sleep(0.5)
    account.finish_rotation(token)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["works_failed"] == 0, summary
    assert summary["works_written"] + summary["works_superseded"] == 3_000, summary


def test_the_pool_sensor_and_a_dagster_run_ride_through_a_rotation(account, works_store):
    """The code location's sensor ticks and a run, each opening connections after the password
    changed: through the same resources the code location builds from the environment."""
    import idminter_pipeline.definitions  # noqa: PLC0415

    # Built again from this test's environment (the module builds its resources when imported,
    # and another test of this process may have imported it with another registry).
    defs = importlib.reload(idminter_pipeline.definitions).defs
    assert defs.resources["registry_database"].secret_name == account.secret_name
    sensor = defs.resolve_sensor_def("pool_size_sensor")
    instance = dg.DagsterInstance.ephemeral()

    def tick() -> object:
        with dg.build_sensor_context(
            instance=instance, definitions=defs, resources=defs.resources
        ) as context:
            return sensor(context)

    tick()
    token = account.start_rotation()
    tick()  # raises if the sensor cannot connect
    job = defs.resolve_job_def("pool_replenishment_job")
    result = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"canonical_id_pool": {"config": {"target_free": 6_000}}}},
    )
    assert result.success
    account.finish_rotation(token)
    tick()
    free = fetch_all(account.server, "SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")
    assert free[0][0] >= 6_000


def test_an_admin_command_runs_during_a_rotation(account, works_store, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RDS_")},
        **account.environment(),
        "PYTHONPATH": str(ROOT),
    }
    account.start_rotation()

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", CLI, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    status = command("pool", "status")
    assert status.returncode == 0, status.stderr
    assert "free" in status.stdout
    reconcile = command("reconcile")
    assert reconcile.returncode == 0, reconcile.stderr


def test_without_the_pending_fallback_a_rotation_fails_the_next_connect(account, monkeypatch):
    """The tests above depend on the fallback to AWSPENDING: without it, the connect after the
    password changed is refused."""
    from idminter_pipeline.core.errors import RegistryUnavailableError  # noqa: PLC0415

    account.start_rotation()
    monkeypatch.setattr(
        connection,
        "_open_with_secret",
        lambda settings: connection._open(
            settings, *connection.read_secret_credentials(settings.secret_name, region="eu-west-1")
        ),
    )
    with pytest.raises(RegistryUnavailableError, match="Access denied"):
        connection.connect(account.settings)


def test_a_rotation_that_finishes_during_a_connect_ends_on_the_new_current_version(
    account, monkeypatch
):
    """The connect reads AWSCURRENT (the old password: refused); the rotation's last step lands
    before it reads AWSPENDING, which is gone; the fresh AWSCURRENT is the new password."""
    token = account.start_rotation()
    read = connection.read_secret_credentials
    stages: list[str] = []

    def read_as_the_rotation_finishes(secret_name: str, **options: str) -> tuple[str, str]:
        stage = options.get("stage", "AWSCURRENT")
        if stage == "AWSPENDING" and "AWSPENDING" not in stages:
            account.finish_rotation(token)
        stages.append(stage)
        return read(secret_name, **options)

    monkeypatch.setattr(connection, "read_secret_credentials", read_as_the_rotation_finishes)
    conn = connection.connect(account.settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            (user,) = cursor.fetchone()
    finally:
        conn.close()
    assert user.startswith(f"{account.user}@")
    assert stages == ["AWSCURRENT", "AWSPENDING", "AWSCURRENT"]
