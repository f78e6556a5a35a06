"""Passwords and secret values never appear in logs, exceptions, CLI output or Dagster run records.

The foundation's local credentials are `id_minter`/`id_minter` (the password equals the user name,
so searching for it proves nothing); these tests create a database user of their own with a
distinctive password, and use it successfully and unsuccessfully everywhere a password travels.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest
from click.testing import CliRunner
from db_helpers import secret_settings, server_admin_connection

from benchmarks.minting_workload import fill_pool
from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import RegistryUnavailableError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.defs.registry.assets import registry_schema
from idminter_pipeline.defs.resources import RegistryDatabase, registry_database_from_env
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.schema import apply_migrations, migration_status
from idminter_pipeline.registry.summary import registry_summary

PASSWORD_ENV = "IDMINTER_SECRETS_TEST_PASSWORD"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def secret_user(registry: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A user whose password occurs nowhere else, with rights on the test registry only."""
    suffix = uuid.uuid4().hex[:10]
    user, password = f"idm_secret_{suffix}", f"Pw-{uuid.uuid4().hex}-zQ9"
    admin = server_admin_connection(registry)
    hosts = ("127.0.0.1", "localhost")
    try:
        with admin.cursor() as cursor:
            for host in hosts:
                cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                cursor.execute(
                    f"GRANT ALL PRIVILEGES ON `{registry.database}`.* TO %s@%s", (user, host)
                )
        admin.commit()
        yield DatabaseSettings(
            host=registry.host,
            port=registry.port,
            username=user,
            password=password,
            database=registry.database,
        )
    finally:
        with admin.cursor() as cursor:
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
        admin.commit()
        admin.close()


def _wrong(settings: DatabaseSettings) -> DatabaseSettings:
    return DatabaseSettings(**{**settings.__dict__, "password": f"Wrong-{uuid.uuid4().hex}"})


def _exception_text(error: BaseException) -> str:
    """Everything an exception can show: message, repr, arguments and the chained traceback."""
    return "\n".join(
        [str(error), repr(error), repr(error.args), *traceback.format_exception(error)]
    )


def _env(settings: DatabaseSettings) -> dict[str, str]:
    return settings.as_environment()


def test_settings_never_render_the_password(secret_user):
    assert secret_user.password not in repr(secret_user)
    assert secret_user.password not in secret_user.describe()
    assert secret_user.password not in str(secret_user.with_database("other"))


def test_a_working_connection_logs_no_password(secret_user, empty_database, caplog):
    admin = server_admin_connection(empty_database)
    with admin.cursor() as cursor:
        for host in ("127.0.0.1", "localhost"):
            cursor.execute(
                f"GRANT ALL PRIVILEGES ON `{empty_database.database}`.* TO %s@%s",
                (secret_user.username, host),
            )
    admin.close()
    fresh = secret_user.with_database(empty_database.database)
    caplog.set_level(logging.DEBUG)
    # Migrating a fresh database is where yoyo and our code log the most.
    assert apply_migrations(lambda: connect(fresh))
    assert migration_status(lambda: connect(fresh))[0].applied
    conn = connect(secret_user)
    summary = registry_summary(conn)
    conn.close()
    assert summary.database == secret_user.database
    fill_pool(secret_user, 10)
    with Minter(lambda: connect(secret_user)) as minter:
        minted = minter.mint_ids([MintRequest(SourceIdentifier.parse("Work[sierra/b1]"))])
    assert len(minted) == 1
    assert caplog.records, "DEBUG logging captured nothing: the check would be vacuous"
    assert secret_user.password not in caplog.text
    assert secret_user.password not in repr([r.args for r in caplog.records])


def test_a_refused_connection_names_the_server_not_the_password(secret_user, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = _wrong(secret_user)
    with pytest.raises(RegistryUnavailableError) as raised:
        connect(wrong)
    text = _exception_text(raised.value)
    assert "Access denied" in text
    assert secret_user.username in text
    for password in (wrong.password, secret_user.password):
        assert password not in text
        assert password not in caplog.text


def test_cli_output_holds_no_password_on_success_or_failure(secret_user, monkeypatch):
    for name, value in _env(secret_user).items():
        monkeypatch.setenv(name, value)
    fill_pool(secret_user, 10)
    runner = CliRunner()
    ok = runner.invoke(main, ["-v", "db", "status", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["registry"]["database"] == secret_user.database
    request = json.dumps({"source": "Work[sierra/b2]"}) + "\n"
    minted = runner.invoke(main, ["-v", "mint-ids"], input=request)
    assert minted.exit_code == 0, minted.output
    assert json.loads(minted.stdout)["outcome"] == "minted"
    wrong = _wrong(secret_user)
    monkeypatch.setenv("RDS_PASSWORD", wrong.password)
    refused = runner.invoke(main, ["-v", "db", "status"])
    assert refused.exit_code == 1
    assert "cannot connect to the registry" in refused.output
    refused_mint = runner.invoke(main, ["-v", "mint-ids"], input=request)
    assert refused_mint.exit_code == 1
    assert "cannot connect to the registry" in refused_mint.stderr
    for result in (ok, minted, refused, refused_mint):
        everything = result.output + result.stderr + repr(result.exception)
        assert secret_user.password not in everything
        assert wrong.password not in everything


def test_the_cli_process_prints_no_password_even_verbose(secret_user):
    """A real process: its logging goes to the real stderr, not to pytest's capture."""
    command = [str(VENV_BIN / "idminter"), "-v", "db", "migrate"]
    env = {**os.environ, **_env(secret_user)}
    ok = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert ok.returncode == 0, ok.stderr
    wrong = _wrong(secret_user)
    env["RDS_PASSWORD"] = wrong.password
    refused = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert refused.returncode == 1
    assert "cannot connect to the registry" in refused.stderr
    for result in (ok, refused):
        assert secret_user.password not in result.stdout + result.stderr
        assert wrong.password not in result.stdout + result.stderr


def _run_records_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """The run as Dagster stores it: run config, tags, every event record and its metadata."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    parts = [dg.serialize_value(run), json.dumps(run.run_config, default=str)]
    logs = instance.all_logs(run_id)
    assert logs, "no event records: the check would be vacuous"
    parts += [dg.serialize_value(entry) for entry in logs]
    return "\n".join(parts)


def _materialize(resource: RegistryDatabase, instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [registry_schema],
        resources={"registry_database": resource},
        instance=instance,
        raise_on_error=False,
    )


def test_dagster_run_records_hold_no_password(secret_user, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, secret_user.password)
    resource = RegistryDatabase(
        host=secret_user.host,
        port=secret_user.port,
        username=secret_user.username,
        password=dg.EnvVar(PASSWORD_ENV),
        database=secret_user.database,
    )
    with dg.instance_for_test() as instance:
        result = _materialize(resource, instance)
        assert result.success
        text = _run_records_text(instance, result.run_id)
        assert "applied_versions" in text
        # The resource's description (user included) is in the metadata: the search reaches it.
        assert secret_user.username in text
        assert secret_user.password not in text

        wrong = _wrong(secret_user)
        monkeypatch.setenv(PASSWORD_ENV, wrong.password)
        failed = _materialize(resource, instance)
        assert not failed.success
        text = _run_records_text(instance, failed.run_id)
        assert "cannot connect to the registry" in text
        assert wrong.password not in text
        assert secret_user.password not in text


def test_the_production_resource_reads_the_password_through_envvar(secret_user, monkeypatch):
    for name, value in _env(secret_user).items():
        monkeypatch.setenv(name, value)
    resource = registry_database_from_env()
    assert secret_user.password not in repr(resource)
    with dg.instance_for_test() as instance:
        result = _materialize(resource, instance)
        assert result.success
        assert secret_user.password not in _run_records_text(instance, result.run_id)


@pytest.fixture
def mocked_secrets_manager(aws_env) -> object:
    """Secrets Manager on the shared moto server (see conftest)."""
    return boto3.client("secretsmanager", region_name="eu-west-1")


def test_secrets_manager_credentials_stay_out_of_logs_and_errors(
    secret_user, mocked_secrets_manager, caplog
):
    client = mocked_secrets_manager
    name = f"idminter/{uuid.uuid4().hex[:8]}"
    client.create_secret(
        Name=name,
        SecretString=json.dumps(
            {"username": secret_user.username, "password": secret_user.password}
        ),
    )
    leaked = f"Leak-{uuid.uuid4().hex}"
    broken = f"{name}-broken"
    client.create_secret(Name=broken, SecretString=json.dumps({"pass": leaked}))
    settings = secret_settings(secret_user, name)
    # Only what the product logs from here on: creating the secrets above logged their values
    # (botocore logs request bodies at DEBUG), which is the test's doing, not the product's.
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    conn = connect(settings)
    with conn.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0].startswith(secret_user.username + "@")
    conn.close()

    # A malformed secret: the error says which keys are missing, never what the secret holds.
    with pytest.raises(RegistryUnavailableError) as raised:
        connect(DatabaseSettings(**{**settings.__dict__, "secret_name": broken}))
    assert broken in str(raised.value)
    assert leaked not in _exception_text(raised.value)

    assert any(r.name.startswith("botocore") for r in caplog.records), "boto logged nothing"
    assert secret_user.password not in caplog.text
    assert leaked not in caplog.text
