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
@click.option(
    "--restore",
    is_flag=True,
    help="The dump is this registry's own backup being restored: keep it as it was (its free "
    "pool too) instead of marking it a fork; then run `idminter db recover-published`.",
)
def load_dump_command(dump: Path, database: str, restore: bool) -> None:
    """Load a mysqldump / mariadb-dump file (plain or .gz) into a new scratch database with the
    server's own client, then print its tables and row counts as JSON.

    Without --restore the loaded copy is a fork of the registry it was dumped from (a test
    registry refreshed from a production snapshot): it is migrated and marked a fork, its copied
    free pool dropped, and it draws new IDs only from the fork partition. Point
    IDENTIFIERS_DATABASE at it afterwards (see docs/operations/shadow-and-cutover.md). With
    --restore it is the registry itself, restored: docs/operations/tasks.md, "Restore the
    registry".
    """
    # Imported here, so `idminter db --help` does not pay for the registry modules.
    from idminter_pipeline.registry.dumps import load_dump  # noqa: PLC0415

    echo_json(load_dump(DatabaseSettings.from_env(), dump, database, restore=restore).as_dict())
