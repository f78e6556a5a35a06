"""Output helpers shared by the command modules."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import click


def _default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def echo_json(value: Any, *, pretty: bool = True) -> None:
    click.echo(
        json.dumps(value, indent=2 if pretty else None, default=_default, ensure_ascii=False)
    )
