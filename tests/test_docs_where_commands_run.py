"""Every runbook step that runs a command says where it runs: each operations page, and the
deployment page's first steps, with an `idminter` or `dagster` command links to the place
production commands run (the Dagster stack's admin task and ECS Exec); and the pages that list
the commands needing the migration account list the same commands, each a real one."""

from __future__ import annotations

import re

import click
import pytest
from docs_helpers import DOCS, ROOT

from idminter_pipeline.cli import main

PLACE = "aws-dagster.md#run-a-command-against-production"
RUNBOOKS = [*sorted((DOCS / "operations").glob("*.md")), DOCS / "deploy" / "aws.md"]
# A command in a code span, or a line of a code block that starts with one.
_COMMAND = re.compile(r"`(?:idminter|dagster) [a-z]|^\s*(?:idminter|dagster) [a-z]", re.MULTILINE)
# The lists of commands that need the migration account, one per page.
MIGRATION_LISTS = {
    DOCS / "operations" / "tasks.md": "secret only for the commands that need it:",
    DOCS / "operations" / "alerts.md": "secret only for the commands that need it:",
    DOCS / "deploy" / "aws-dagster.md": "Commands that need the **migration account**",
}


def test_the_runbooks_hold_commands():
    assert sum(bool(_COMMAND.search(page.read_text())) for page in RUNBOOKS) >= 6


@pytest.mark.parametrize("page", RUNBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_page_with_commands_says_where_they_run(page):
    text = page.read_text(encoding="utf-8")
    if _COMMAND.search(text):
        assert PLACE in text, f"{page.name} runs commands without saying where: link {PLACE}"


def _migration_commands(page, marker) -> set[str]:
    """The `db` subcommands named in the parenthesis after `marker`."""
    text = page.read_text(encoding="utf-8")
    listed = re.sub(r"\s+", " ", text[text.index(marker) :].split(")", 1)[0])
    return set(re.findall(r"`(?:idminter )?(?:db )?([a-z-]+)`", listed))


def test_the_migration_account_lists_agree_and_name_real_commands():
    lists = {page: _migration_commands(page, marker) for page, marker in MIGRATION_LISTS.items()}
    first = next(iter(lists.values()))
    assert len(first) >= 10, first
    for page, names in lists.items():
        assert names == first, (page.name, names ^ first)
    db = main.get_command(click.Context(main), "db")  # the CLI loads its groups lazily
    assert isinstance(db, click.Group)
    commands = set(db.list_commands(click.Context(db)))
    assert first <= commands, first - commands
