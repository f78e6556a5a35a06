"""Settings from the environment: every variable read through `core.settings`, and a bad value
refused with `InvalidSettingError` naming the variable and the value."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from cli_process import (
    IDMINTER,
    MAX_ERROR_BYTES,
    TEN_MB,
    one_error_line,
    process_env,
    run_idminter,
    run_python,
)

import idminter_pipeline
from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.core.settings import DatabaseSettings, env_flag, env_seconds
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy

ROOT = Path(idminter_pipeline.__file__).parent
# Reading a variable: `os.environ.get(...)`, `os.environ[...]`, `... in os.environ`, `os.getenv`.
# Passing the whole environment on to a child process (`{**os.environ, ...}`) is not a read.
READS = re.compile(r"os\.environ\.get\(|os\.environ\[|in os\.environ(?!\.)|os\.getenv\(")
CHECKED_PARTS = ("core", "registry", "works", "defs", "cli", "aws_lambda", "local_servers")


def test_variables_are_read_through_the_settings_helpers_only():
    readers = sorted(
        f"  {path.relative_to(ROOT)}:{number}: {line.strip()}"
        for part in CHECKED_PARTS
        for path in (ROOT / part).rglob("*.py")
        if path != ROOT / "core" / "settings.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if READS.search(line)
    )
    assert not readers, "environment read outside core.settings:\n" + "\n".join(readers)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_a_switch_reads_the_usual_words(text, expected):
    assert env_flag("SWITCH", {"SWITCH": text}) is expected


def test_an_unset_switch_takes_its_default():
    assert env_flag("SWITCH", {}) is False
    assert env_flag("SWITCH", {"SWITCH": " "}, default=True) is True


@pytest.mark.parametrize("text", ["maybe", "2", "enabled"])
def test_a_switch_that_is_neither_on_nor_off_is_refused_naming_it(text):
    with pytest.raises(InvalidSettingError, match=f"SWITCH '{text}'"):
        env_flag("SWITCH", {"SWITCH": text})
    # The churn guard's switch was the one read that took any other word for "on".
    with pytest.raises(InvalidSettingError, match="IDMINTER_CHURN_GUARD_ENABLED"):
        ChurnGuardPolicy.from_env({"IDMINTER_CHURN_GUARD_ENABLED": text})


@pytest.mark.parametrize("text", ["soon", "-1", "nan", "inf", "61"])
def test_seconds_out_of_bounds_are_refused_naming_them(text):
    with pytest.raises(InvalidSettingError, match=f"WAIT '{text}'"):
        env_seconds({"WAIT": text}, "WAIT", 5.0, maximum=60)
    assert env_seconds({"WAIT": " 2.5 "}, "WAIT", 5.0, maximum=60) == 2.5
    assert env_seconds({}, "WAIT", 5.0, maximum=60) == 5.0


@pytest.mark.parametrize(
    "variable",
    [
        "IDMINTER_WORKS_WINDOW_MINUTES",
        "IDMINTER_WORKS_MAX_PARTITIONS_PER_RUN",
        "IDMINTER_POOL_SENSOR_INTERVAL_SECONDS",
    ],
)
def test_the_code_location_refuses_a_number_that_is_not_whole_naming_it(variable):
    env = {**os.environ, variable: "15.0"}
    loaded = run_python("import idminter_pipeline.definitions", env=env)
    assert loaded.returncode != 0
    last = loaded.stderr.strip().splitlines()[-1]
    assert last.startswith("idminter_pipeline.core.errors.InvalidSettingError:"), last
    assert f"invalid {variable} '15.0': expected a whole number" in last


def test_a_bad_debug_switch_is_one_error_line_naming_it():
    env = {**os.environ, "IDMINTER_DEBUG": "loud"}
    result = subprocess.run(
        [IDMINTER, "lookup", "Work[sierra-system-number/b1]"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: invalid IDMINTER_DEBUG 'loud': expected 1, true, yes or on (or 0, false, no, off)"
    ]


@pytest.mark.parametrize("port", ["abc", "3391.0", "0", "65536", "-1", "0x0d3f"])
def test_a_bad_rds_port_names_the_variable_and_the_value(registry, port):
    result = run_idminter(
        ["lookup", "Work[sierra-system-number/b1]"], process_env(registry, RDS_PORT=port)
    )
    assert result.returncode == 2
    one_error_line(result, "RDS_PORT", repr(port), "1 to 65535")


def test_settings_errors_cap_what_they_echo():
    with pytest.raises(InvalidSettingError) as raised:
        DatabaseSettings.from_env({"RDS_PORT": "9" * TEN_MB})
    assert len(str(raised.value)) < MAX_ERROR_BYTES
    assert "RDS_PORT" in str(raised.value) and f"{TEN_MB:,} characters" in str(raised.value)
