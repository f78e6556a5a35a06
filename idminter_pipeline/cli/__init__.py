"""The `idminter` command. Each domain adds its commands from its own module here.

Every command prints results on stdout (JSON where scripts consume it) and errors on stderr as one
line naming the offending value; exit status 2 means bad input, 1 any other refusal.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from idminter_pipeline.errors import IdMinterError, InvalidInputError

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

# -- lazy commands -------------------------------------------------------------------------------
# Each command's module is imported when that command runs, so `idminter lookup` does not pay
# for the pandas, yoyo, Elasticsearch and Dagster-adjacent imports other commands need (start-up
# went from about 0.55 s to under 0.2 s). Name -> "module:attribute".
_COMMANDS = {
    "db": "idminter_pipeline.cli.db:db",
    "local-run": "idminter_pipeline.cli.local_run:local_run",
    "works": "idminter_pipeline.cli.works:works",
    "mint": "idminter_pipeline.cli.works:mint",
    "pool": "idminter_pipeline.cli.pool:pool",
    "lookup": "idminter_pipeline.cli.minting:lookup",
    "mint-ids": "idminter_pipeline.cli.minting:mint_ids",
    "aliases": "idminter_pipeline.cli.minting:aliases",
    "reconcile": "idminter_pipeline.cli.reconcile:reconcile",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS and cmd_name not in self.commands:
            module, attribute = _COMMANDS[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


# -- end of lazy commands ------------------------------------------------------------------------


class _Main(_LazyGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInputError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except IdMinterError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_FAILURE)


@click.group(cls=_Main)
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def main(verbose: bool) -> None:
    """Stable public identifiers for catalogue records (RFC 083)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
