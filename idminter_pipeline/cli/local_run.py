"""`idminter local-run`: the README's run command, on the embedded defaults."""

from __future__ import annotations

import click

from idminter_pipeline import local_database
from idminter_pipeline.registry import schema
from idminter_pipeline.registry.connection import connect, connection_factory
from idminter_pipeline.registry.summary import registry_summary


@click.command("local-run")
def local_run() -> None:
    """Start the local registry, migrate it and print its state."""
    for line in local_database.ensure_server().lines():
        click.echo(line)
    applied = schema.apply_migrations(connection_factory())
    click.echo(f"schema: applied {', '.join(applied)}" if applied else "schema: up to date")
    conn = connect()
    try:
        summary = registry_summary(conn)
    finally:
        conn.close()
    click.echo(
        f"registry {summary.database}: {summary.free_ids:,} free IDs, "
        f"{summary.assigned_ids:,} assigned, {summary.mappings:,} source identifiers mapped"
    )
