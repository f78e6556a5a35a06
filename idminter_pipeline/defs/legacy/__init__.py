"""The live legacy migration and the adoption of a registry the reference port created, in
Dagster: the `legacy_registry_migration` and `registry_adoption` assets."""
