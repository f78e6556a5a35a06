"""The CLI imports a command's module only when that command runs, so the commands scripts call
in loops (`idminter lookup`, `idminter mint-ids`) start without pandas, boto3, yoyo, Dagster or
the Elasticsearch client. (How long start-up takes is a benchmark figure, not a test.)"""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from idminter_pipeline.cli import COMMAND_NAMES, main

HEAVY = ("pandas", "boto3", "botocore", "yoyo", "dagster", "elasticsearch", "numpy")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import idminter_pipeline.cli",
        # What `idminter mint-ids` and `idminter lookup` import to run.
        "import idminter_pipeline.cli.minting",
    ],
)
def test_the_fast_commands_import_nothing_heavy(code):
    loaded = _modules_after(code)
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_mint_ids_with_no_input_runs_without_the_heavy_modules():
    code = (
        "import sys\nfrom idminter_pipeline.cli import main\n"
        "sys.stdin = open('/dev/null')\n"
        "try:\n    main(['mint-ids'])\nexcept SystemExit as exit:\n    assert not exit.code"
    )
    loaded = _modules_after(code)
    assert "idminter_pipeline.cli.minting" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_every_command_is_still_listed_and_loads_when_used():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in (
        "aliases",
        "db",
        "local-run",
        "lookup",
        "mint",
        "mint-ids",
        "pool",
        "reconcile",
        "shadow",
        "works",
    ):
        assert f"  {name} " in result.output
        assert CliRunner().invoke(main, [name, "--help"]).exit_code == 0
    db_help = CliRunner().invoke(main, ["db", "--help"]).output
    assert "migrate-legacy" in db_help and "finalize-legacy" in db_help


def _without_aws(env: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if not name.startswith(("AWS_", "IDMINTER_DOWNSTREAM_", "RDS_SECRET"))
    }


def test_help_lists_every_command_without_importing_any():
    code = (
        "from idminter_pipeline.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exit:\n    assert not exit.code"
    )
    loaded = _modules_after(code)
    assert not {name for name in loaded if name.startswith("idminter_pipeline.cli.")}
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_the_listing_is_the_one_click_makes_from_the_commands_themselves(width):
    # Rendered in a fresh process, lazily, then again once every command is imported.
    code = (
        "import json\nfrom click.testing import CliRunner\n"
        "from idminter_pipeline.cli import main, _COMMANDS\n"
        "def render():\n"
        f"    return CliRunner().invoke(main, ['--help'], terminal_width={width}).output\n"
        "lazy = render()\n"
        "for name in _COMMANDS:\n    main.get_command(None, name)\n"
        "print(json.dumps([lazy, render()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    lazy, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "mint-ids" in lazy
    assert lazy == loaded


def test_importing_the_cli_and_the_works_path_does_not_import_boto3_with_no_aws_configured():
    code = (
        "import idminter_pipeline.cli, idminter_pipeline.cli.works\n"
        "import idminter_pipeline.works.pipeline, idminter_pipeline.works.downstream"
    )
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=_without_aws(dict(os.environ)),
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "idminter_pipeline.works.downstream" in loaded
    assert "boto3" not in loaded and "botocore" not in loaded


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_a_commands_help_imports_neither_the_registry_client_nor_anything_heavy(command):
    code = (
        "from idminter_pipeline.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit as exit:\n"
        "    assert not exit.code"
    )
    loaded = _modules_after(code)
    assert not {name for name in loaded if name.split(".")[0] in {*HEAVY, "pymysql", "tenacity"}}
