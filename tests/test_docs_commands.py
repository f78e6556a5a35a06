"""Every `idminter ...` command the docs give names a command that exists and only options that
command takes, so a runbook step run as written reaches the code it means.

Commands are read from code spans and from fenced blocks (continuation lines joined, comments,
pipes and redirections cut, `VAR=value` prefixes skipped). Placeholders (`<dump.sql.gz>`, `...`)
are values, so only the command path and the option names are checked. docs/cli.md is generated
from the commands themselves and is not read.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from idminter_pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PAGES.remove(ROOT / "docs" / "cli.md")
FENCED_BLOCK = re.compile(r"^\s*```[\w-]*\n(?P<body>.*?)\n\s*```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`(?P<body>[^`\n]+)`")
# Where a shell command ends: a pipe, a redirection, a list operator or a comment.
COMMAND_END = re.compile(r"\s(?:\||>|2>|&&|;|#)\s?.*$")
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _commands_in(text: str) -> list[str]:
    found = []
    for block in FENCED_BLOCK.finditer(text):
        for line in block["body"].replace("\\\n", " ").splitlines():
            found.append(line.strip())
    outside = FENCED_BLOCK.sub(" ", text)
    found.extend(span["body"].strip() for span in CODE_SPAN.finditer(outside))
    commands = []
    for line in found:
        words = line.split()
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words and words[0] in ("idminter", ".venv/bin/idminter"):
            commands.append(COMMAND_END.sub("", " ".join(words)))
    return commands


def documented_commands() -> list[tuple[str, str]]:
    return [
        (page.relative_to(ROOT).as_posix(), command)
        for page in PAGES
        for command in _commands_in(page.read_text())
    ]


def _option_names(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def problem(command_line: str) -> str | None:
    """What is wrong with `command_line` as a command of `idminter`, or None."""
    try:
        words = shlex.split(command_line)[1:]
    except ValueError:
        words = command_line.split()[1:]
    command: click.Command = main
    path = ["idminter"]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        if words[0] in ("...", "COMMAND") or words[0].startswith("<") or words[0][0].isdigit():
            return None  # "idminter ..." stands for any command; "idminter 0.1.0" is output
        found = command.get_command(click.Context(command), words[0])
        if found is None:
            return f"{' '.join(path)} has no command {words[0]!r}"
        path.append(words.pop(0))
        command = found
    known = _option_names(command)
    # `--window-start/--window-end` in prose names two options.
    options = [o for w in words if w.startswith("--") for o in w.split("=", 1)[0].split("/")]
    for option in options:
        if option not in known:
            return f"{' '.join(path)} takes no option {option}"
    return None


def test_the_docs_give_idminter_commands():
    assert len(documented_commands()) > 100


@pytest.mark.parametrize(
    ("page", "command_line"), documented_commands(), ids=lambda value: str(value)[:60]
)
def test_each_documented_command_exists_with_its_options(page, command_line):
    wrong = problem(command_line)
    assert wrong is None, f"{page}: `{command_line}`: {wrong}"


def test_a_wrong_command_or_option_is_found():
    """The check itself."""
    assert problem("idminter db rollbak --yes") == "idminter db has no command 'rollbak'"
    assert problem("idminter db rollback --force") == "idminter db rollback takes no option --force"
    assert problem("idminter mint --window-start 2026-07-30T09:30:00Z --window-end ...") is None
    assert _commands_in(
        "Run `IDENTIFIERS_DATABASE=x idminter db migrate` or\n"
        "```bash\nidminter works show a2345bcd \\\n  > report.json  # a comment\n```\n"
    ) == ["idminter works show a2345bcd", "idminter db migrate"]
