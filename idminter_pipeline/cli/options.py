"""Options shared by the command modules."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import click


class StatusReport(Protocol):
    """What a command that swaps or drops tables prints: a status, then its messages."""

    @property
    def status(self) -> str: ...

    @property
    def messages(self) -> Sequence[str]: ...


def echo_status(report: StatusReport) -> None:
    click.echo(report.status)
    for message in report.messages:
        click.echo(f"  {message}")


def dropping_tables(
    confirmation: str, refusal: str
) -> Callable[[Callable[[], StatusReport]], Callable[[bool], None]]:
    """For a command that drops tables for good: its `--yes` flag (help `confirmation`),
    refused without it as a usage error (`refusal`); with it, the command runs and its report's
    status and messages are printed."""

    def decorate(run: Callable[[], StatusReport]) -> Callable[[bool], None]:
        @click.option("--yes", is_flag=True, help=confirmation)
        @functools.wraps(run)
        def command(yes: bool) -> None:
            if not yes:
                raise click.UsageError(refusal)
            echo_status(run())

        return command

    return decorate


def at_least_one(name: str, default: int | None, help_text: str) -> Callable[[Any], Any]:
    """A whole-number option of at least 1 (sizes, targets, rounds, writers); click refuses a
    smaller one, naming it. Its default is shown in `--help` when it has one."""
    return click.option(
        name,
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        help=help_text,
    )
