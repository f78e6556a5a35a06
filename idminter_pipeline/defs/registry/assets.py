"""The registry's schema, as the root of the asset graph."""

import dagster as dg

from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import REGISTRY_POOL, RegistryDatabase
from idminter_pipeline.registry import schema
from idminter_pipeline.registry.forks import fork_status

REGISTRY_GROUP = "registry"


@dg.asset(
    metadata=release_metadata(), group_name=REGISTRY_GROUP, kinds={"mysql"}, pool=REGISTRY_POOL
)
def registry_schema(
    context: dg.AssetExecutionContext, registry_database: RegistryDatabase
) -> dg.MaterializeResult:
    """The RFC 083 tables, created and upgraded by the versioned migrations in `sql/`; whether
    this registry is a fork of another (it then draws new IDs from the fork partition only).

    A registry whose tables are not this project's (created by the reference port) fails the
    run, naming the differences and `idminter db adopt`; the asset check says the same.
    """
    factory = registry_database.connection_factory()
    applied_now = schema.apply_migrations(factory)
    states = schema.migration_status(factory)
    conn = factory()
    try:
        fork = fork_status(conn)
        drift = schema.schema_drift(conn)
        conn.rollback()
    finally:
        conn.close()
    if fork.is_fork:
        context.log.warning(
            f"this registry is a fork ({fork.origin}): new IDs from the fork partition"
        )
    context.log.info(
        f"applied {', '.join(applied_now)}" if applied_now else "schema already up to date"
    )
    return dg.MaterializeResult(
        metadata={
            "applied_now": dg.MetadataValue.json(applied_now),
            "applied_versions": dg.MetadataValue.json([s.version for s in states if s.applied]),
            "latest_version": states[-1].version if states else "",
            "database": registry_database.settings().describe(),
            "is_fork": fork.is_fork,
            "id_partition": fork.partition,
            "fork_origin": fork.origin or "",
            # After migrating, only a legacy table waiting for migrate-legacy remains.
            "schema_drift": dg.MetadataValue.json(drift.as_dict()),
        }
    )
