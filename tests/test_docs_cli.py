"""docs/cli.md is exactly what `make docs` generates from the commands' `--help`."""

from __future__ import annotations

from tools import cli_docs


def test_cli_reference_matches_the_commands_help():
    generated = cli_docs.render()
    current = cli_docs.CLI_DOC.read_text(encoding="utf-8")
    assert current == generated, "docs/cli.md is out of date: run `make docs`"


def test_every_command_has_a_section():
    text = cli_docs.render()
    for command in ("idminter mint", "idminter pool top-up", "idminter db migrate-legacy"):
        assert f"## `{command}`" in text
