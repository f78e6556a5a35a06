"""Connections, including credentials from AWS Secrets Manager (a real moto server on loopback)."""

import json
import logging
import uuid

import boto3
import pytest
from db_helpers import secret_settings, server_admin_connection
from pymysql.constants import CLIENT

from idminter_pipeline.core.errors import RegistryUnavailableError
from idminter_pipeline.core.settings import DatabaseSettings, ElasticsearchSettings
from idminter_pipeline.registry.connection import connect

# Users are server-wide: a name of this process's own, so parallel workers never share one.
ROTATING_USER = f"idminter_rotating_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def secrets(aws_env):
    return boto3.client("secretsmanager", region_name="eu-west-1")


@pytest.fixture
def rotating_user(session_database):
    """A database user whose password the tests change, as a rotation would."""
    password = f"pw-{uuid.uuid4().hex}"
    conn = server_admin_connection(session_database)
    with conn.cursor() as cursor:
        for host in ("localhost", "127.0.0.1"):
            cursor.execute("DROP USER IF EXISTS %s@%s", (ROTATING_USER, host))
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (ROTATING_USER, host, password))
            cursor.execute(
                f"GRANT ALL ON `{session_database.database}`.* TO %s@%s", (ROTATING_USER, host)
            )
    yield password
    with conn.cursor() as cursor:
        for host in ("localhost", "127.0.0.1"):
            cursor.execute("DROP USER IF EXISTS %s@%s", (ROTATING_USER, host))
    conn.close()


def _current_user(settings) -> str:
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            return cursor.fetchone()[0]
    finally:
        conn.close()


def test_settings_given_to_a_child_process_read_back_the_same():
    settings = DatabaseSettings(
        host="aurora.example", port=3307, username="minter", password="p w%", database="ids"
    )
    environment = settings.as_environment()
    assert DatabaseSettings.from_env(environment) == settings
    assert set(environment) == {
        "RDS_PRIMARY_HOST",
        "RDS_PORT",
        "RDS_USERNAME",
        "RDS_PASSWORD",
        "IDENTIFIERS_DATABASE",
    }


def test_settings_come_from_the_established_variables():
    settings = DatabaseSettings.from_env(
        {
            "RDS_PRIMARY_HOST": "aurora.example",
            "RDS_PORT": "3306",
            "RDS_USERNAME": "minter",
            "RDS_PASSWORD": "s3cret-value",
            "IDENTIFIERS_DATABASE": "ids",
            "RDS_SECRET_NAME": "catalogue/id_minter",
        }
    )
    assert (settings.host, settings.port, settings.username, settings.database) == (
        "aurora.example",
        3306,
        "minter",
        "ids",
    )
    assert settings.secret_name == "catalogue/id_minter"
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in settings.describe()
    es = ElasticsearchSettings.from_env(
        {
            "ES_SOURCE_INDEX_PREFIX": "works-source",
            "ES_TARGET_INDEX_PREFIX": "works-identified",
            "PIPELINE_DATE": "2026-11-01",
        }
    )
    assert (es.source_index, es.target_index) == (
        "works-source-2026-11-01",
        "works-identified-2026-11-01",
    )


def test_credentials_come_from_the_secret(secrets, session_database, rotating_user):
    name = f"idminter/{uuid.uuid4().hex}"
    secrets.create_secret(
        Name=name, SecretString=json.dumps({"username": ROTATING_USER, "password": rotating_user})
    )
    assert _current_user(secret_settings(session_database, name)).startswith(ROTATING_USER)


def test_a_rotation_in_progress_falls_back_to_the_pending_version(
    secrets, session_database, rotating_user
):
    name = f"idminter/{uuid.uuid4().hex}"
    stale = json.dumps({"username": ROTATING_USER, "password": "stale-password"})
    secrets.create_secret(Name=name, SecretString=stale)
    secrets.put_secret_value(
        SecretId=name,
        SecretString=json.dumps({"username": ROTATING_USER, "password": rotating_user}),
        VersionStages=["AWSPENDING"],
    )
    assert _current_user(secret_settings(session_database, name)).startswith(ROTATING_USER)


def test_wrong_credentials_fail_without_revealing_them(
    secrets, session_database, rotating_user, caplog
):
    name = f"idminter/{uuid.uuid4().hex}"
    secrets.create_secret(
        Name=name,
        SecretString=json.dumps({"username": ROTATING_USER, "password": "wrong-password-123"}),
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RegistryUnavailableError) as raised:
        connect(secret_settings(session_database, name))
    assert "Access denied" in str(raised.value)
    assert name in str(raised.value)
    for text in (str(raised.value), caplog.text):
        assert "wrong-password-123" not in text
        assert rotating_user not in text


def test_a_malformed_secret_names_the_missing_keys_only(secrets, session_database):
    name = f"idminter/{uuid.uuid4().hex}"
    secrets.create_secret(Name=name, SecretString=json.dumps({"user": "x", "pass": "hunter2"}))
    with pytest.raises(RegistryUnavailableError, match="'username' and 'password'") as raised:
        connect(secret_settings(session_database, name))
    assert "hunter2" not in str(raised.value)


def test_an_unreachable_server_is_a_clear_error():
    settings = DatabaseSettings(host="127.0.0.1", port=1, password="do-not-print-me")
    with pytest.raises(RegistryUnavailableError) as raised:
        connect(settings)
    assert "127.0.0.1:1/identifiers" in str(raised.value)
    assert "do-not-print-me" not in str(raised.value)


def test_sessions_are_strict_utc_and_utf8mb4(conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@session.sql_mode, @@session.time_zone, @@character_set_client")
        sql_mode, time_zone, charset = cursor.fetchone()
    assert "STRICT_ALL_TABLES" in sql_mode
    assert time_zone == "+00:00"
    assert charset == "utf8mb4"


def test_connections_share_one_tls_context_and_use_tls_where_the_server_offers_it(registry):
    """pymysql offers TLS to a server that supports it; the context it needs for that is built
    once per process, not once per connection."""
    first, second = connect(registry), connect(registry)
    try:
        assert first.ctx is second.ctx
        with first.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            (_, cipher) = cursor.fetchone()
        # MySQL generates certificates and offers TLS by default; the local MariaDB does not.
        offers_tls = bool(first.server_capabilities & CLIENT.SSL)
        assert bool(cipher) == offers_tls
    finally:
        first.close()
        second.close()
