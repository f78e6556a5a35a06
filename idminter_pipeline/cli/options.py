"""Options shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


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
