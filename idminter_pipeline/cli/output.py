"""Output helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Protocol

import click


class Report(Protocol):
    def as_dict(self) -> Mapping[str, Any]: ...


def _default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def echo_json(value: Any, *, pretty: bool = True) -> None:
    click.echo(
        json.dumps(value, indent=2 if pretty else None, default=_default, ensure_ascii=False)
    )


def echo_report(report: Report, *, fails: object, exit_code: int = 1) -> None:
    """`report` as JSON; then, when `fails` (a count or a flag) is set, exit with `exit_code`."""
    echo_json(report.as_dict())
    if fails:
        sys.exit(exit_code)
