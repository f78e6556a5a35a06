DROP TABLE IF EXISTS reconciliation_orphans;
DROP TABLE IF EXISTS legacy_migration_changes;
DROP TABLE IF EXISTS legacy_migration_state;
