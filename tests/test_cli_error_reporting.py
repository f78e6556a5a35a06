"""How the command line reports a failure: one `error:` line, never a traceback or a 10 MB echo
(the traceback only with `--debug` or `IDMINTER_DEBUG=1`): secrets that cannot be read, a registry
without its schema or a table, an unwritable works store, an unexpected error, typed errors
capping what they echo.

Each case runs the real `idminter` process where a traceback would come from the process,
otherwise the click runner.
"""

from __future__ import annotations

import socket
import uuid

import boto3
from cli_process import (
    MAX_ERROR_BYTES,
    TEN_MB,
    one_error_line,
    process_env,
    run_idminter,
)
from click.testing import CliRunner

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import (
    InvalidCanonicalIdError,
    InvalidJobIdError,
    InvalidSourceIdentifierError,
    LegacyMigrationError,
    PredecessorCycleError,
)
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry import connection
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_secrets_manager_unreachable_is_one_line_naming_secret_and_endpoint(registry):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = process_env(
        registry,
        RDS_SECRET_NAME="idminter/registry",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    result = run_idminter(["lookup", "Work[sierra-system-number/b1]"], env)
    assert result.returncode == 1
    one_error_line(result, "'idminter/registry'", endpoint, "EndpointConnectionError")


def test_a_secret_with_a_duplicate_key_is_refused_without_echoing_it(aws_env, registry):
    secrets = boto3.client("secretsmanager", region_name="eu-west-1")
    name = f"idminter/{uuid.uuid4().hex}"
    value = '{"username": "u", "password": "first-Zq9", "password": "second-Zq9"}'
    secrets.create_secret(Name=name, SecretString=value)
    result = run_idminter(
        ["lookup", "Work[sierra-system-number/b1]"], process_env(registry, RDS_SECRET_NAME=name)
    )
    line = one_error_line(result, name, "each given once")
    assert "Zq9" not in line


def test_a_registry_without_schema_is_one_line_naming_migrate(empty_database):
    result = run_idminter(["lookup", "Work[sierra-system-number/b1]"], process_env(empty_database))
    assert result.returncode == 1
    one_error_line(result, "no tables and no migration history", "run `idminter db migrate`")


def test_a_driver_error_is_one_line_unless_debugging(empty_database):
    """A registry that lost a table fails in the driver (1146): one line naming the missing
    table and the migration, and the traceback only when debugging."""
    apply_migrations(lambda: connect(empty_database))
    conn = connect(empty_database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("DROP TABLE identifiers")
    finally:
        conn.close()
    args = ["lookup", "Work[sierra-system-number/b1]"]
    result = run_idminter(args, process_env(empty_database))
    assert result.returncode == 1
    line = one_error_line(result, "no such table", "idminter db migrate")
    assert "unexpected" not in line

    for debug_args, extra in (
        (["--debug", *args], {}),
        (args, {"IDMINTER_DEBUG": "1"}),
    ):
        debugged = run_idminter(debug_args, process_env(empty_database, **extra))
        assert debugged.returncode == 1
        stderr = debugged.stderr.decode()
        assert "Traceback (most recent call last)" in stderr
        assert stderr.strip().splitlines()[-1].startswith("error: the registry has no such table")


def test_typed_errors_show_their_traceback_only_when_debugging(registry):
    env = process_env(registry, IDMINTER_DEBUG="1")
    result = run_idminter(["lookup", "Work[nope"], env)
    assert result.returncode == 2
    assert b"Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(b"error: invalid source identifier")


def test_a_works_store_under_proc_is_one_line(registry, tmp_path):
    """Whatever an unwritable works store raises, no traceback reaches the user."""
    env = process_env(registry, WORKS_STORE_PATH="/proc/idminter/works.sqlite3")
    result = run_idminter(["works", "generate", "--count", "1"], env)
    assert result.returncode in (1, 2)
    one_error_line(result)


def test_typed_errors_cap_the_values_they_name():
    huge = "x" * TEN_MB
    errors = [
        InvalidSourceIdentifierError(huge, "too long"),
        InvalidCanonicalIdError(huge, "too long"),
        InvalidJobIdError(huge, "too long"),
        LegacyMigrationError("legacy rows do not fit", offending=[huge] * 20),
        PredecessorCycleError(
            [SourceIdentifier("Work", "sierra", f"b{n}") for n in range(100_000)]
        ),
    ]
    for error in errors:
        assert len(str(error)) < 4 * MAX_ERROR_BYTES, (type(error).__name__, len(str(error)))
    assert "100,000 characters" not in str(errors[0])
    assert f"{TEN_MB:,} characters in all" in str(errors[0])
    assert "10 more" in str(errors[3])
    assert "99,990 more" in str(errors[4])
    assert len(errors[4].cycle) == 100_000  # the error still carries every member


def test_a_10mb_identifier_on_the_command_line_is_capped(registry):
    result = CliRunner().invoke(main, ["lookup", "Work[s/" + "x" * TEN_MB])
    assert result.exit_code == 2
    assert len(result.stderr) < MAX_ERROR_BYTES


def test_an_unexpected_error_is_one_line_naming_its_type_and_the_debug_switch(monkeypatch):
    def broken_factory():
        raise RuntimeError("a defect nobody anticipated")

    monkeypatch.setattr(connection, "connection_factory", broken_factory)
    monkeypatch.delenv("IDMINTER_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["lookup", "Work[sierra-system-number/b1]"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: unexpected RuntimeError: 'a defect nobody anticipated' (for the traceback: "
        "idminter --debug or IDMINTER_DEBUG=1)"
    ]
