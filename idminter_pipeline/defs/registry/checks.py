"""Is the registry this project's schema? Fails on any drift the shared check finds."""

import dagster as dg

from idminter_pipeline.defs.registry.assets import registry_schema
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.registry import schema
from idminter_pipeline.registry.outage import ride_out

SCHEMA_CHECK = "registry_schema_is_this_projects"


def drift_metadata(drift: schema.SchemaDrift) -> dict[str, dg.MetadataValue]:
    return {
        "drift_kind": dg.MetadataValue.text(drift.kind.value),
        "differences": dg.MetadataValue.json(list(drift.differences)),
        "resolution": dg.MetadataValue.text(drift.resolution or ""),
    }


@dg.asset_check(
    asset=registry_schema,
    name=SCHEMA_CHECK,
    description="Fails when the registry's tables, character sets, collations, columns or "
    "migration history are not what sql/ builds (a port-created registry, a missing migration).",
)
def registry_schema_is_this_projects(registry_database: RegistryDatabase) -> dg.AssetCheckResult:
    def read() -> schema.SchemaDrift:
        conn = registry_database.connect()
        try:
            return schema.schema_drift(conn)
        finally:
            conn.close()

    drift = ride_out(read, what="checking the registry's schema")
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        passed=not drift.drifted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{drift.kind.value}: {'; '.join(drift.differences)}; run `{drift.resolution}`"
            if drift.drifted
            else "this project's schema, every migration applied"
        ),
        metadata=drift_metadata(drift),
    )
