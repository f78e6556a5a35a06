"""A registry password rotated under every process that holds registry connections.

Secrets Manager rotates a database secret in four steps (its RDS rotation functions): put the
new password as `AWSPENDING`, set it on the database (`ALTER USER`), test it, then move
`AWSCURRENT` to it. Sessions already open survive `ALTER USER`; what must not fail is every
connection opened after it: between the second and the fourth step only `AWSPENDING` is right,
after the fourth only `AWSCURRENT`. Each test here rotates a real account on the test server
with moto's Secrets Manager in the middle of a process, and ends that account's open sessions
right after the password changes, so the process has to connect again at the worst moment (an
idle timeout, a failover or a connection pool would make it do so in production).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import boto3
import dagster as dg
import pymysql
import pytest
from db_helpers import fetch_all, secret_settings, server_admin_connection
from works_helpers import fill_pool, work

from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import SqliteWorksStore

ROOT = Path(__file__).resolve().parents[1]
CLI = "from idminter_pipeline.cli import main; main()"


@dataclass
class RotatingAccount:
    """A database account behind a Secrets Manager secret, rotated as AWS rotates it."""

    settings: DatabaseSettings  # the secret's settings (RDS_SECRET_NAME), as deployments use
    user: str
    secret_name: str
    server: DatabaseSettings
    secrets: object
    admin: pymysql.connections.Connection  # may alter users and end their sessions

    def _admin(self, sql: str, params: tuple = ()) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(sql, params)

    def start_rotation(self) -> str:
        """Steps one and two: the new password as AWSPENDING, then on the database; the open
        sessions are ended, so every process reconnects while AWSCURRENT is stale."""
        password = f"pw-{uuid.uuid4().hex}"
        token = str(uuid.uuid4())
        self.secrets.put_secret_value(
            SecretId=self.secret_name,
            ClientRequestToken=token,
            SecretString=json.dumps({"username": self.user, "password": password}),
            VersionStages=["AWSPENDING"],
        )
        for host in ("localhost", "127.0.0.1"):
            self._admin("ALTER USER %s@%s IDENTIFIED BY %s", (self.user, host, password))
        self.end_sessions()
        return token

    def finish_rotation(self, token: str) -> None:
        """Step four: AWSCURRENT moves to the new version (AWSPENDING goes with it)."""
        versions = self.secrets.describe_secret(SecretId=self.secret_name)["VersionIdsToStages"]
        (current,) = [v for v, stages in versions.items() if "AWSCURRENT" in stages]
        self.secrets.update_secret_version_stage(
            SecretId=self.secret_name,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=current,
        )
        self.secrets.update_secret_version_stage(
            SecretId=self.secret_name, VersionStage="AWSPENDING", RemoveFromVersionId=token
        )
        self.end_sessions()

    def end_sessions(self) -> int:
        with self.admin.cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (self.user,)
            )
            ids = [row[0] for row in cursor.fetchall()]
            for session in ids:
                # A session may have ended by itself meanwhile (unknown thread id).
                with suppress(pymysql.err.OperationalError):
                    cursor.execute("KILL %s", (session,))
        return len(ids)

    def environment(self) -> dict[str, str]:
        return {
            "RDS_PRIMARY_HOST": self.settings.host,
            "RDS_PORT": str(self.settings.port),
            "IDENTIFIERS_DATABASE": self.settings.database,
            "RDS_SECRET_NAME": self.secret_name,
            "RDS_USERNAME": "",
            "RDS_PASSWORD": "",
        }


@pytest.fixture
def account(aws_env, registry, monkeypatch) -> Iterator[RotatingAccount]:
    user = f"idminter_rot_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    conn = server_admin_connection(registry)
    with conn.cursor() as cursor:
        for host in ("localhost", "127.0.0.1"):
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            cursor.execute(f"GRANT ALL ON `{registry.database}`.* TO %s@%s", (user, host))
    secrets = boto3.client("secretsmanager", region_name="eu-west-1")
    name = f"idminter/registry-{uuid.uuid4().hex}"
    secrets.create_secret(
        Name=name, SecretString=json.dumps({"username": user, "password": password})
    )
    settings = secret_settings(registry, name)
    rotating = RotatingAccount(settings, user, name, registry, secrets, conn)
    for variable, value in rotating.environment().items():
        monkeypatch.setenv(variable, value)
    yield rotating
    with conn.cursor() as cursor:
        for host in ("localhost", "127.0.0.1"):
            cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
    conn.close()


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
    from idminter_pipeline.registry import connection  # noqa: PLC0415

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
