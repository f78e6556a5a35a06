"""The `idminter` command. Each domain adds its commands from its own module here.

Every command prints results on stdout (JSON where scripts consume it) and errors on stderr as one
line naming the offending value; exit status 2 means bad input, 1 any other refusal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from idminter_pipeline.cli.db import db
from idminter_pipeline.cli.local_run import local_run
from idminter_pipeline.cli.minting import aliases, lookup, mint_ids
from idminter_pipeline.cli.pool import pool
from idminter_pipeline.cli.works import mint, works
from idminter_pipeline.errors import IdMinterError, InvalidInputError

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class _Main(click.Group):
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


main.add_command(db)
main.add_command(local_run)
main.add_command(works)
main.add_command(mint)
main.add_command(pool)
main.add_command(lookup)
main.add_command(mint_ids)
main.add_command(aliases)
