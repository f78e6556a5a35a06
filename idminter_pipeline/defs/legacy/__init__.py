"""The live legacy migration in Dagster: the `legacy_registry_migration` asset."""
