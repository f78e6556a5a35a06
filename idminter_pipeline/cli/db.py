"""`idminter db ...`: the registry server and its schema."""

from __future__ import annotations

import click

from idminter_pipeline.cli.adopt import (
    adopt,
    adopt_variants,
    finalize_adopt,
    rollback_adopt,
    sync_adopt,
)
from idminter_pipeline.cli.dumps import load_dump_command
from idminter_pipeline.cli.legacy import (
    finalize_legacy,
    legacy_status,
    migrate_legacy,
    rollback_legacy,
    sync_legacy,
)
from idminter_pipeline.cli.output import echo_json, echo_report

# The server and registry modules (pymysql, tenacity, yoyo) are imported by the commands that
# run, so `idminter db --help` does not pay for them.


@click.group()
def db() -> None:
    """The registry database: server, schema migrations and state."""


@db.group()
def server() -> None:
    """This checkout's own MariaDB server, unless RDS_* settings point at another server."""


@server.command("start")
def server_start() -> None:
    """Make a registry server available (idempotent) and print how to reach it."""
    from idminter_pipeline.local_servers import mariadb as local_database  # noqa: PLC0415

    report = local_database.ensure_server()
    for line in report.lines():
        click.echo(line)


@server.command("stop")
def server_stop() -> None:
    """Stop this checkout's server, once it has exited (its data stays in .local/mariadb)."""
    from idminter_pipeline.local_servers import mariadb as local_database  # noqa: PLC0415

    stopped = local_database.stop_server()
    click.echo(
        "project-local mariadbd stopped" if stopped else "project-local mariadbd not running"
    )


@server.command("status")
def server_status() -> None:
    """Whether the configured registry is reachable; exit 1 if it is not."""
    from idminter_pipeline.local_servers import mariadb as local_database  # noqa: PLC0415

    reachable, lines = local_database.server_status()
    for line in lines:
        click.echo(line)
    raise SystemExit(0 if reachable else 1)


@db.command("migrate")
def migrate() -> None:
    """Apply pending schema migrations from sql/ (running it twice changes nothing)."""
    from idminter_pipeline.registry import schema  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415

    applied = schema.apply_migrations(connection_factory())
    if applied:
        for version in applied:
            click.echo(f"applied {version}")
    else:
        click.echo("schema up to date: nothing to apply")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Applied and pending schema versions, and what the registry holds."""
    from idminter_pipeline.registry import schema  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connect, connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.forks import fork_status  # noqa: PLC0415
    from idminter_pipeline.registry.legacy_migration.adopt import (  # noqa: PLC0415
        adoption_status,
    )
    from idminter_pipeline.registry.summary import registry_summary  # noqa: PLC0415

    states = schema.migration_status(connection_factory())
    conn = connect()
    try:
        drift = schema.schema_drift(conn)
        summary = registry_summary(conn)
        fork = fork_status(conn)
    finally:
        conn.close()
    if as_json:
        echo_json(
            {
                "migrations": [{"version": s.version, "applied_at": s.applied_at} for s in states],
                "registry": summary.as_dict(),
                "fork": fork.as_dict(),
                "schema": drift.as_dict(),
                "adoption": adoption_status(connection_factory()),
            }
        )
        return
    for state in states:
        when = f"applied {state.applied_at:%Y-%m-%d %H:%M:%S} UTC" if state.applied else "PENDING"
        click.echo(f"{state.version:40} {when}")
    if drift.drifted:
        click.echo(f"schema DRIFT ({drift.kind.value}): run `{drift.resolution}`")
        for difference in drift.differences:
            click.echo(f"  {difference}")
    else:
        click.echo("schema: this project's (no drift)")
    click.echo(f"database {summary.database} on {summary.server_version}")
    click.echo(f"  free canonical IDs:     {summary.free_ids:>12,}")
    click.echo(f"  assigned canonical IDs: {summary.assigned_ids:>12,}")
    click.echo(f"  source identifier maps: {summary.mappings:>12,}")
    if fork.is_fork:
        click.echo(
            f"  FORK of another registry ({fork.origin}, marked {fork.forked_at:%Y-%m-%d %H:%M:%S} "
            f"UTC by {fork.recorded_by}): new IDs only from the {fork.partition} partition"
        )
    else:
        click.echo(f"  not a fork: new IDs from the {fork.partition} partition")


@db.command("mark-fork")
@click.option(
    "--origin",
    required=True,
    help="Where this copy came from, recorded with the mark (e.g. 'aurora clone of prod, 12 May').",
)
def mark_fork_command(origin: str) -> None:
    """Record that this registry is a copy of another (an Aurora clone, a restored snapshot),
    drop the free pool it copied, and keep its new IDs to the fork partition of the ID space,
    so it never hands out an ID the original has handed out or will. Run it on the copy before
    anything mints there; running it again changes nothing. Prints the fork status as JSON."""
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.forks import mark_fork  # noqa: PLC0415

    echo_json(mark_fork(connection_factory(), origin).as_dict())


@db.command("retire-mapping")
@click.argument("source")
@click.option("--reason", required=True, help="Why the mapping goes (recorded with it).")
def retire_mapping_command(source: str, reason: str) -> None:
    """Delete the mapping of SOURCE (e.g. 'Work[sierra-system-number/b1234567]') and retire its
    canonical ID unless an alias keeps it: the one sanctioned change to a published mapping.
    Only the migration (admin) account may run it; the database records it in mapping_changes,
    and the ID never goes to another record. Prints what it did as JSON."""
    from idminter_pipeline.core.source_identifiers import SourceIdentifier  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.reconciliation import retire_mapping  # noqa: PLC0415

    echo_json(
        retire_mapping(connection_factory(), SourceIdentifier.parse(source), reason).as_dict()
    )


@db.command("rollback")
@click.option("--count", default=1, show_default=True, help="How many migrations to undo.")
@click.option("--yes", is_flag=True, help="Confirm: rolling back drops tables and their data.")
def rollback(count: int, yes: bool) -> None:
    """Roll back the most recent schema migrations."""
    if not yes:
        raise click.UsageError("rolling back drops registry tables; pass --yes to confirm")
    from idminter_pipeline.registry import schema  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415

    for version in schema.rollback_migrations(connection_factory(), count=count):
        click.echo(f"rolled back {version}")


# The legacy-migration commands live in their own module; they are `idminter db` subcommands.
db.add_command(migrate_legacy)
db.add_command(finalize_legacy)
db.add_command(rollback_legacy)
db.add_command(sync_legacy)
db.add_command(legacy_status)
db.add_command(load_dump_command)
# Adopting a registry the reference port created: the legacy machinery's adopt kind.
db.add_command(adopt)
db.add_command(adopt_variants)
db.add_command(sync_adopt)
db.add_command(finalize_adopt)
db.add_command(rollback_adopt)


@db.command("recover-published")
@click.option(
    "--apply",
    is_flag=True,
    help="Register the missing mappings and assign their IDs (default: a dry run).",
)
def recover_published_command(apply: bool) -> None:
    """After restoring the registry to an earlier point: put back every mapping the identified
    documents published since then, so no published ID goes to another record.

    Reads every identified document in the works store and compares each published (source
    identifier, canonical ID) with the registry. A missing mapping is registered again to its
    published ID and the ID marked assigned, with its inheritance when it had inherited its
    predecessor's ID (and the predecessor's own mapping, when the successor's document replaced
    the predecessor's); a conflict (the source mapped to another ID, or the ID given to another
    record) is reported, never changed. Prints a JSON report; exits 1 when there are conflicts.
    Run it before minting resumes: docs/operations/tasks.md, "Restore the registry".
    """
    from idminter_pipeline.core.settings import DatabaseSettings  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415
    from idminter_pipeline.works.restore import recover_published  # noqa: PLC0415
    from idminter_pipeline.works.stores import works_store_from_env  # noqa: PLC0415

    factory = connection_factory(DatabaseSettings.from_env())
    with works_store_from_env(existing=True) as store, Minter(factory) as minter:
        report = recover_published(store, minter, factory, apply=apply)
    echo_report(report, fails=report.conflicts)
