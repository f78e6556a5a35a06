DROP TABLE IF EXISTS registry_forks;
DROP TABLE IF EXISTS mapping_changes;
DROP TABLE IF EXISTS mapping_change_permits;
