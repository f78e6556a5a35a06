"""Running the real `idminter` process (where a traceback would come from the process, and
command-line bytes need a real argv), and checking that a refusal is one short `error:` line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from idminter_pipeline.core.settings import DatabaseSettings

IDMINTER = str(Path(sys.executable).parent / "idminter")
PROJECT = Path(__file__).resolve().parent.parent
TEN_MB = 10 * 1024 * 1024
# A readable error: one line of a few hundred bytes, whatever the input's size.
MAX_ERROR_BYTES = 1_000


def process_env(settings: DatabaseSettings, **extra: str) -> dict[str, str]:
    """This process's environment pointed at `settings`, without the debug switch."""
    env = {name: value for name, value in os.environ.items() if name != "IDMINTER_DEBUG"}
    return {
        **env,
        **settings.as_environment(),
        **extra,
    }


def run_idminter(
    args: list[str | bytes], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [IDMINTER, *args], input=stdin, env=env, capture_output=True, check=False, timeout=180
    )


def run_in_project(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`argv` run in the project folder, its text output captured; its exit code is the
    caller's to check."""
    return subprocess.run(
        argv,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=timeout,
        check=False,
    )


def run_python(
    code: str, *, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter (as a runtime or code server loads it: nothing imported
    yet), in the project folder."""
    return run_in_project([sys.executable, "-c", code], env=env, stdin=stdin)


def one_error_line(result: subprocess.CompletedProcess, *names: str) -> str:
    """The process's only stderr line, checked: nothing on stdout, no traceback, under
    `MAX_ERROR_BYTES`, naming each of `names`."""
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
