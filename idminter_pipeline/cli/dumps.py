"""`idminter db load-dump`: a production registry dump into a scratch database, for shadowing."""

from __future__ import annotations

from pathlib import Path

import click

from idminter_pipeline.cli.output import echo_json
from idminter_pipeline.core.settings import DatabaseSettings


@click.command("load-dump")
@click.argument("dump", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--database",
    required=True,
    help="The new (or empty) database to load it into, on the configured server.",
)
def load_dump_command(dump: Path, database: str) -> None:
    """Load a mysqldump / mariadb-dump file (plain or .gz) into a new scratch database with the
    server's own client, then print its tables and row counts as JSON.

    Refreshes a test registry from a production snapshot: point IDENTIFIERS_DATABASE at the
    scratch database afterwards, then `idminter db migrate` and
    `idminter db migrate-legacy --hold-synced` (see docs/operations/shadow-and-cutover.md).
    """
    # Imported here, so `idminter db --help` does not pay for the registry modules.
    from idminter_pipeline.registry.dumps import load_dump  # noqa: PLC0415

    echo_json(load_dump(DatabaseSettings.from_env(), dump, database).as_dict())
