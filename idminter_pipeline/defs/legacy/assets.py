"""The legacy 1:1 registry migrated to the RFC 083 tables, between the schema and the pool; and
a registry the reference port created, adopted into this project's schema."""

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from idminter_pipeline.defs.config import positive_int_field
from idminter_pipeline.defs.registry.assets import REGISTRY_GROUP, registry_schema
from idminter_pipeline.defs.release import release_metadata
from idminter_pipeline.defs.resources import REGISTRY_POOL, RegistryDatabase
from idminter_pipeline.registry import legacy_migration
from idminter_pipeline.registry.legacy_migration import adopt as adoption
from idminter_pipeline.registry.legacy_migration import hold


def _copy_result(
    context: dg.AssetExecutionContext, report: legacy_migration.MigrationReport, **metadata: Any
) -> dg.MaterializeResult:
    """The report's messages logged, and what a migration and an adoption both record: the
    copy's mappings, the changes applied (under the final lock too), timings, whether it was
    verified and swapped; then the asset's own `metadata`."""
    for message in report.messages:
        context.log.info(message)
    common = {
        "status": report.status,
        "phase": report.phase,
        "mappings": dg.MetadataValue.int(report.new_rows),
        "changes_applied": dg.MetadataValue.int(report.changes_applied),
        "changes_applied_under_lock": dg.MetadataValue.int(report.changes_applied_under_lock),
        "duration_seconds": dg.MetadataValue.float(report.duration_seconds),
        "lock_seconds": dg.MetadataValue.float(report.lock_seconds),
        "verified": dg.MetadataValue.bool(report.verified),
        "swapped": dg.MetadataValue.bool(report.swapped),
    }
    return dg.MaterializeResult(metadata={**common, **metadata})


class LegacyMigrationConfig(dg.Config):
    """The asset's run config, typed (`LEGACY_MIGRATION_CONFIG_SCHEMA` is what Dagster checks)."""

    batch_size: int = Field(default=legacy_migration.DEFAULT_BATCH_SIZE, ge=1)
    """Rows per copy batch: at least 1, clamped to the module's bounds."""
    hold_synced: bool = False
    """Copy and verify, then hold before the swap (shadowing: see `legacy_migration.hold`)."""


# The launchpad's schema: a batch size below 1 is refused when the run is launched, not in it.
LEGACY_MIGRATION_CONFIG_SCHEMA = {
    "batch_size": positive_int_field(
        legacy_migration.DEFAULT_BATCH_SIZE,
        f"Rows per copy batch, at least 1 (clamped to {legacy_migration.MIN_BATCH_SIZE:,}-"
        f"{legacy_migration.MAX_BATCH_SIZE:,}).",
    ),
    "hold_synced": dg.Field(
        bool,
        default_value=False,
        description="Copy and verify, then stop before the swap (while shadowing); "
        "materialize again without it to swap.",
    ),
}


@dg.asset(
    metadata=release_metadata(),
    group_name=REGISTRY_GROUP,
    deps=[registry_schema],
    pool=REGISTRY_POOL,
    kinds={"mysql"},
    config_schema=LEGACY_MIGRATION_CONFIG_SCHEMA,
)
def legacy_registry_migration(
    context: dg.AssetExecutionContext, registry_database: RegistryDatabase
) -> dg.MaterializeResult:
    """Copies a legacy `identifiers` table (if any) into the new tables, verifies and swaps it.

    Does nothing on a registry without a legacy table; resumes an interrupted copy. The legacy
    table is kept until `idminter db finalize-legacy`.
    """
    config = LegacyMigrationConfig(**context.op_execution_context.op_config)

    def log_progress(progress: legacy_migration.Progress) -> None:
        context.log.info(f"{progress.phase}: {progress.rows_copied:,} rows")

    report = legacy_migration.migrate(
        registry_database.connection_factory(),
        batch_size=config.batch_size,
        progress=log_progress,
        swap=not config.hold_synced,
    )
    held = hold.hold_status(registry_database.connection_factory())
    lag = held.get("lag") or {}
    return _copy_result(
        context,
        report,
        rows_copied=dg.MetadataValue.int(report.rows_copied),
        lock_rows_read=dg.MetadataValue.int(report.lock_rows_read),
        held_synced=dg.MetadataValue.bool(held["held_synced"]),
        pending_legacy_changes=dg.MetadataValue.int(lag.get("pending_changes", 0)),
        lag_seconds=dg.MetadataValue.float(lag.get("lag_seconds", 0.0)),
    )


class RegistryAdoptionConfig(dg.Config):
    """The adoption asset's run config (`REGISTRY_ADOPTION_CONFIG_SCHEMA` is what Dagster
    checks)."""

    batch_size: int = Field(default=legacy_migration.DEFAULT_BATCH_SIZE, ge=1)
    hold_synced: bool = False
    register_variants_file: str = ""
    no_variants: bool = False


REGISTRY_ADOPTION_CONFIG_SCHEMA = {
    "batch_size": positive_int_field(
        legacy_migration.DEFAULT_BATCH_SIZE,
        f"Canonical IDs per copy batch, at least 1 (clamped to "
        f"{legacy_migration.MIN_BATCH_SIZE:,}-{legacy_migration.MAX_BATCH_SIZE:,}).",
    ),
    "hold_synced": dg.Field(
        bool,
        default_value=False,
        description="Copy and verify, then stop before the swap (while shadowing).",
    ),
    "register_variants_file": dg.Field(
        str,
        default_value="",
        description="JSON lines from `idminter db adopt-variants`: registered at the swap.",
    ),
    "no_variants": dg.Field(
        bool,
        default_value=False,
        description="Register no variants (the decision a swap needs, if no file is given).",
    ),
}


@dg.asset(
    metadata=release_metadata(),
    group_name=REGISTRY_GROUP,
    kinds={"mysql"},
    config_schema=REGISTRY_ADOPTION_CONFIG_SCHEMA,
)
def registry_adoption(
    context: dg.AssetExecutionContext, registry_database: RegistryDatabase
) -> dg.MaterializeResult:
    """A registry the reference port created, converted into this project's schema online
    (`idminter db adopt`; docs/operations/adopting-a-port-registry.md). Does nothing on a
    registry that is this project's; resumes an interrupted adoption. A swap needs the decision
    on case variants: `register_variants_file` or `no_variants`."""
    config = RegistryAdoptionConfig(**context.op_execution_context.op_config)
    if not config.hold_synced and not config.register_variants_file and not config.no_variants:
        raise dg.Failure(
            "a swap needs the decision on case variants: set register_variants_file (from "
            "`idminter db adopt-variants`) or no_variants (see `idminter db adopt --dry-run`)"
        )
    variants = (
        adoption.read_variants(Path(config.register_variants_file))
        if config.register_variants_file
        else []
    )
    report = adoption.adopt(
        registry_database.connection_factory(),
        batch_size=config.batch_size,
        progress=lambda progress: context.log.info(f"{progress.phase}: {progress.rows_copied:,}"),
        swap=not config.hold_synced,
        variants=variants,
    )
    status = adoption.adoption_status(registry_database.connection_factory())
    return _copy_result(
        context,
        report,
        canonical_ids_copied=dg.MetadataValue.int(report.rows_copied),
        variants_registered=dg.MetadataValue.int(report.variants_registered),
        variants_not_registered=dg.MetadataValue.json(report.variants_not_registered),
        held_synced=dg.MetadataValue.bool(status["held_synced"]),
        pending_port_changes=dg.MetadataValue.int(
            (status.get("lag") or {}).get("pending_changes", 0)
        ),
    )
