"""Bad input on the command line gives one `error:` line, never a traceback or a 10 MB echo.

Each case runs the real `idminter` process where a traceback would come from the process (and
`--job-id $'\\xff'` needs real command-line bytes), otherwise the click runner. Every refused
`mint-ids` call leaves the registry exactly as it was.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pytest
from click.testing import CliRunner
from legacy_helpers import SPECIAL_ROWS, make_legacy_registry
from registry_invariants import registry_snapshot

from benchmarks.minting_workload import fill_pool
from idminter_pipeline.cli import main
from idminter_pipeline.cli.legacy import EXIT_BLOCKING_PROBLEMS
from idminter_pipeline.core.errors import (
    InvalidCanonicalIdError,
    InvalidJobIdError,
    InvalidSettingError,
    InvalidSourceIdentifierError,
    LegacyMigrationError,
    PredecessorCycleError,
)
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.legacy.assets import legacy_registry_migration
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.reconciliation.assets import registry_reconciliation
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry import connection
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.minting import Minter, MintRequest
from idminter_pipeline.registry.pool import PoolSettings
from idminter_pipeline.registry.schema import apply_migrations

IDMINTER = str(Path(sys.executable).parent / "idminter")
VALID = '{"source": "Work[axiell-collections-id/AC-valid]"}'
TEN_MB = 10 * 1024 * 1024
# A readable error: one line of a few hundred bytes, whatever the input's size.
MAX_ERROR_BYTES = 1_000


def _env(settings: DatabaseSettings, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "IDMINTER_DEBUG"}
    return {
        **env,
        **settings.as_environment(),
        **extra,
    }


def _run(
    args: list[str | bytes], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [IDMINTER, *args], input=stdin, env=env, capture_output=True, check=False, timeout=180
    )


def _one_error_line(result: subprocess.CompletedProcess, *names: str) -> str:
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert result.stdout == b""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("error: ")
    assert len(result.stderr) < MAX_ERROR_BYTES, len(result.stderr)
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def seeded(registry: DatabaseSettings) -> DatabaseSettings:
    fill_pool(registry, 50)
    with Minter(lambda: connect(registry)) as minter:
        minter.mint_ids([MintRequest(SourceIdentifier.parse("Work[sierra-system-number/b1]"))])
    return registry


# --- item 2: no tracebacks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "names"),
    [
        pytest.param(
            '{"source": "Work[sierra-system-number/b2]", "n": ' + "9" * 5_000 + "}",
            ["line 2", "5,000 digits"],
            id="5000-digit-integer",
        ),
        pytest.param(
            "[" * 100_000 + "]" * 100_000, ["line 2", "nested deeper than 100"], id="deep"
        ),
    ],
)
def test_json_that_crashed_the_parser_is_one_error_line(seeded, line, names):
    before = registry_snapshot(seeded)
    result = _run(["mint-ids"], _env(seeded), f"{VALID}\n{line}\n".encode())
    assert result.returncode == 2
    _one_error_line(result, *names)
    assert registry_snapshot(seeded) == before


def test_an_argument_that_is_not_utf8_is_refused(seeded):
    before = registry_snapshot(seeded)
    stdin = (
        b'{"source": "Work[folio-instance/in2]", "predecessor": "Work[sierra-system-number/b1]"}\n'
    )
    result = _run(["mint-ids", "--job-id", b"\xff"], _env(seeded), stdin)
    assert result.returncode == 2
    _one_error_line(result, "not valid UTF-8", "b'\\xff'")
    assert registry_snapshot(seeded) == before


@pytest.mark.parametrize(
    ("job_id", "reason"),
    [
        ("job-\udcff", "not valid UTF-8"),
        ("job\x00", "control character U+0000"),
        ("", "must not be empty"),
        ("j" * 256, "256 characters"),
        (7, "expected a string"),
    ],
)
def test_job_ids_the_registry_cannot_store_are_refused_before_writing(seeded, job_id, reason):
    before = registry_snapshot(seeded)
    requests = [
        MintRequest(
            SourceIdentifier.parse("Work[folio-instance/in2]"),
            SourceIdentifier.parse("Work[sierra-system-number/b1]"),
        )
    ]
    with Minter(lambda: connect(seeded)) as minter, pytest.raises(InvalidJobIdError) as raised:
        minter.mint_ids(requests, job_id=job_id)  # type: ignore[arg-type]
    assert reason in str(raised.value)
    assert raised.value.value == job_id
    assert registry_snapshot(seeded) == before


@pytest.mark.parametrize("port", ["abc", "3391.0", "0", "65536", "-1", "0x0d3f"])
def test_a_bad_rds_port_names_the_variable_and_the_value(registry, port):
    result = _run(["lookup", "Work[sierra-system-number/b1]"], _env(registry, RDS_PORT=port))
    assert result.returncode == 2
    _one_error_line(result, "RDS_PORT", repr(port), "1 to 65535")


def test_settings_errors_cap_what_they_echo():
    with pytest.raises(InvalidSettingError) as raised:
        DatabaseSettings.from_env({"RDS_PORT": "9" * TEN_MB})
    assert len(str(raised.value)) < MAX_ERROR_BYTES
    assert "RDS_PORT" in str(raised.value) and f"{TEN_MB:,} characters" in str(raised.value)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_secrets_manager_unreachable_is_one_line_naming_secret_and_endpoint(registry):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = _env(
        registry,
        RDS_SECRET_NAME="idminter/registry",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    result = _run(["lookup", "Work[sierra-system-number/b1]"], env)
    assert result.returncode == 1
    _one_error_line(result, "'idminter/registry'", endpoint, "EndpointConnectionError")


def test_a_secret_with_a_duplicate_key_is_refused_without_echoing_it(aws_env, registry):
    secrets = boto3.client("secretsmanager", region_name="eu-west-1")
    name = f"idminter/{uuid.uuid4().hex}"
    value = '{"username": "u", "password": "first-Zq9", "password": "second-Zq9"}'
    secrets.create_secret(Name=name, SecretString=value)
    result = _run(["lookup", "Work[sierra-system-number/b1]"], _env(registry, RDS_SECRET_NAME=name))
    line = _one_error_line(result, name, "each given once")
    assert "Zq9" not in line


def test_a_registry_without_schema_is_one_line_naming_migrate(empty_database):
    result = _run(["lookup", "Work[sierra-system-number/b1]"], _env(empty_database))
    assert result.returncode == 1
    _one_error_line(result, "no tables and no migration history", "run `idminter db migrate`")


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
    result = _run(args, _env(empty_database))
    assert result.returncode == 1
    line = _one_error_line(result, "no such table", "idminter db migrate")
    assert "unexpected" not in line

    for debug_args, extra in (
        (["--debug", *args], {}),
        (args, {"IDMINTER_DEBUG": "1"}),
    ):
        debugged = _run(debug_args, _env(empty_database, **extra))
        assert debugged.returncode == 1
        stderr = debugged.stderr.decode()
        assert "Traceback (most recent call last)" in stderr
        assert stderr.strip().splitlines()[-1].startswith("error: the registry has no such table")


def test_typed_errors_show_their_traceback_only_when_debugging(registry):
    env = _env(registry, IDMINTER_DEBUG="1")
    result = _run(["lookup", "Work[nope"], env)
    assert result.returncode == 2
    assert b"Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(b"error: invalid source identifier")


def test_a_works_store_under_proc_is_one_line(registry, tmp_path):
    """Whatever an unwritable works store raises, no traceback reaches the user."""
    env = _env(registry, WORKS_STORE_PATH="/proc/idminter/works.sqlite3")
    result = _run(["works", "generate", "--count", "1"], env)
    assert result.returncode in (1, 2)
    _one_error_line(result)


# --- item 3: duplicate JSON keys ---------------------------------------------------------------


def test_a_duplicate_key_is_refused_naming_it_not_resolved_silently(seeded):
    line = (
        '{"source": "Work[folio-instance/in2]", '
        '"predecessor": "Work[sierra-system-number/b1]", "predecessor": null}'
    )
    before = registry_snapshot(seeded)
    result = CliRunner().invoke(main, ["mint-ids"], input=f"{VALID}\n{line}\n")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "line 2" in result.stderr and "duplicate key 'predecessor'" in result.stderr
    assert registry_snapshot(seeded) == before


# --- item 4: echoes capped ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "names"),
    [
        pytest.param(
            '{"source": "Work[sierra-system-number/' + "x" * TEN_MB + ']"}',
            ["line 2", "characters in all"],
            id="10mb-source-id",
        ),
        pytest.param("{" + "x" * TEN_MB, ["line 2", "is not valid JSON"], id="10mb-not-json"),
        pytest.param(
            '{"source": "Work[s/x]", "' + "k" * TEN_MB + '": 1}',
            ["line 2", "unknown field"],
            id="10mb-unknown-field",
        ),
        pytest.param('"' + "s" * TEN_MB + '"', ["line 2", "expected a JSON object"], id="10mb-str"),
    ],
)
def test_a_10mb_line_gives_an_error_of_a_few_hundred_bytes(seeded, line, names):
    before = registry_snapshot(seeded)
    result = CliRunner().invoke(main, ["mint-ids"], input=f"{VALID}\n{line}\n")
    assert result.exit_code == 2
    assert len(result.stderr) < MAX_ERROR_BYTES, len(result.stderr)
    assert result.stderr.count("\n") == 1
    for name in names:
        assert name in result.stderr
    assert registry_snapshot(seeded) == before


def test_a_10mb_line_that_is_not_utf8_gives_a_short_error(seeded, tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_bytes(VALID.encode() + b"\n" + b"\xff" * TEN_MB + b"\n")
    result = _run(["mint-ids", "--file", str(path)], _env(seeded))
    assert result.returncode == 2
    _one_error_line(result, "line 2", "not UTF-8", "bytes in all")


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


# --- item 8: a blocking dry run exits non-zero ------------------------------------------------


def _legacy_env(settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _env(settings).items():
        if name.startswith(("RDS_", "IDENTIFIERS_")):
            monkeypatch.setenv(name, value)


def test_a_dry_run_with_blocking_problems_exits_3(legacy_database, monkeypatch):
    too_long = ("abcdefghijk", "Work", "too-long-id", "calm-record-id")
    make_legacy_registry(legacy_database, [*SPECIAL_ROWS, too_long])
    _legacy_env(legacy_database, monkeypatch)
    text = CliRunner().invoke(main, ["db", "migrate-legacy", "--dry-run"])
    assert text.exit_code == EXIT_BLOCKING_PROBLEMS == 3, text.output
    assert "BLOCKING problems found" in text.stdout
    as_json = CliRunner().invoke(main, ["db", "migrate-legacy", "--dry-run", "--json"])
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["blocking"] is True
    usage = CliRunner().invoke(main, ["db", "migrate-legacy", "--help"]).stdout
    assert "3 --dry-run found BLOCKING problems" in " ".join(usage.split())


def test_a_dry_run_without_blocking_problems_exits_0(legacy_database, monkeypatch):
    make_legacy_registry(legacy_database, SPECIAL_ROWS)
    _legacy_env(legacy_database, monkeypatch)
    result = CliRunner().invoke(main, ["db", "migrate-legacy", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "no blocking problems" in result.stdout


# --- item 9: non-positive sizes are refused, naming the value -----------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile", "--batch-size", "0"],
        ["reconcile", "--batch-size", "-1"],
        ["db", "migrate-legacy", "--batch-size", "0"],
        ["db", "migrate-legacy", "--dry-run", "--batch-size", "-5"],
        ["pool", "top-up", "--batch-size", "-5"],
        ["pool", "top-up", "--writers", "0"],
        ["pool", "top-up", "--target", "0"],
        ["pool", "top-up", "--max-rounds", "0"],
    ],
)
def test_non_positive_sizes_are_refused_naming_the_value(registry_env, args):
    before = registry_snapshot(registry_env)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{args[-1]} is not in the range x>=1" in result.stderr
    assert registry_snapshot(registry_env) == before


def test_large_batch_sizes_are_still_clamped(registry_env):
    result = CliRunner().invoke(main, ["reconcile", "--json", "--batch-size", "1000000000"])
    assert result.exit_code == 0, result.output
    legacy = CliRunner().invoke(main, ["db", "migrate-legacy", "--batch-size", "1000000000"])
    assert legacy.exit_code == 0, legacy.output


def _pool_resource() -> FreeIdPool:
    return FreeIdPool.from_settings(PoolSettings.from_env({}))


@pytest.mark.parametrize(
    ("asset", "config"),
    [
        (registry_reconciliation, {"batch_size": 0}),
        (registry_reconciliation, {"batch_size": -1}),
        (legacy_registry_migration, {"batch_size": 0}),
        (canonical_id_pool, {"batch_size": -5}),
        (canonical_id_pool, {"target_free": 0}),
    ],
)
def test_the_launchpad_refuses_non_positive_sizes_before_a_run_exists(
    registry, asset, config, tmp_path
):
    """Dagster resolves run config (and so `PositiveInt`) when it builds the execution plan,
    before the webserver creates the run: the launch is refused, naming the field and value."""
    before = registry_snapshot(registry)
    resources = {
        "registry_database": RegistryDatabase.from_settings(registry),
        # The reconciliation alerts on critical findings.
        "alerts": AlertsResource(log_file=str(tmp_path / "alerts.log")),
    }
    if asset is canonical_id_pool:
        resources["id_pool"] = _pool_resource()
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as raised:
            dg.materialize(
                [asset],
                resources=resources,
                run_config={"ops": {asset.node_def.name: {"config": config}}},
                instance=instance,
            )
        assert instance.get_runs() == []
    (field, value) = next(iter(config.items()))
    message = " ".join(error.message for error in raised.value.errors)
    assert field in message
    assert f"expected a whole number of at least 1, got {value}" in message
    assert registry_snapshot(registry) == before


def test_the_launchpad_still_accepts_positive_and_unset_sizes(registry):
    resources = {
        "registry_database": RegistryDatabase.from_settings(registry),
        "id_pool": _pool_resource(),
    }
    result = dg.materialize(
        [canonical_id_pool],
        resources=resources,
        run_config={
            "ops": {"canonical_id_pool": {"config": {"target_free": 30, "batch_size": None}}}
        },
    )
    assert result.success
    metadata = result.asset_materializations_for_node("canonical_id_pool")[0].metadata
    assert metadata["free"].value >= 30


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
