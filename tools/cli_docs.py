"""Write `docs/cli.md` from the `--help` of every `idminter` command: `make docs`.

The page is generated, never edited by hand: `tests/test_docs_cli.py` regenerates it and fails
when the file differs, so a new command or option shows up in the docs with the change that adds
it. Help is rendered at a fixed width (`WIDTH`) so the text does not depend on the terminal.

    python -m tools.cli_docs            # rewrite docs/cli.md
    python -m tools.cli_docs --check    # exit 1 if docs/cli.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

PROJECT = Path(__file__).resolve().parent.parent
CLI_DOC = PROJECT / "docs" / "cli.md"
PROG = "idminter"
WIDTH = 100

HEADER = """\
# `idminter` command reference

Generated from `--help` by `make docs` (`tools/cli_docs.py`); do not edit by hand.
`tests/test_docs_cli.py` fails when this page and the commands disagree.

`make setup` (and every other `make` target) installs the command into the checkout's virtual
environment: run it as `.venv/bin/idminter ...`, or `source .venv/bin/activate` first to have
`idminter` on your `PATH`.

Every command prints its results on stdout (JSON where scripts read them) and a failure as one
`error: ...` line on stderr naming the offending value. Exit status: 0 success, 1 a refusal or
failure, 2 bad input (`db migrate-legacy --dry-run` adds 3: blocking problems). `--debug` (or
`IDMINTER_DEBUG=1`) adds the traceback. Settings come from the environment:
[configuration.md](configuration.md).
"""


def _commands(
    group: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        ctx = click.Context(group, info_name=PROG)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is not None and not command.hidden:
                yield from _commands(command, (*path, name))


def _help(main: click.Command, path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(
        main, [*path, "--help"], prog_name=PROG, terminal_width=WIDTH, catch_exceptions=False
    )
    if result.exit_code != 0:
        raise RuntimeError(f"{PROG} {' '.join(path)} --help exited {result.exit_code}")
    return result.output.rstrip() + "\n"


def render() -> str:
    """The whole page: one section per command, in command order, each its `--help` text."""
    from idminter_pipeline.cli import main  # noqa: PLC0415  (tools import the package late)

    sections = [HEADER]
    for path, _command in _commands(main, ()):
        title = " ".join((PROG, *path))
        sections.append(f"## `{title}`\n\n```text\n{_help(main, path)}```\n")
    return "\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the page is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = CLI_DOC.read_text(encoding="utf-8") if CLI_DOC.exists() else ""
        if current != text:
            print(f"{CLI_DOC.relative_to(PROJECT)} is out of date: run `make docs`")
            return 1
        return 0
    CLI_DOC.parent.mkdir(parents=True, exist_ok=True)
    CLI_DOC.write_text(text, encoding="utf-8")
    print(f"wrote {CLI_DOC.relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
