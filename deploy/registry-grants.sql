-- Least-privilege accounts for the production registry (docs/deploy/database-accounts.md), for
-- Aurora MySQL 8.0, MySQL 9.x and MariaDB 10.11 (tests/test_server_privileges.py applies this
-- file on MariaDB and, under `make test-mysql`, on MySQL 9). Run as an administrator; put each
-- password in the Secrets Manager secret its deployment reads (RDS_SECRET_NAME) instead of the
-- placeholders.
--
-- The binary log and the legacy migration's triggers: with the binary log on (MySQL's default;
-- on Aurora whenever binlog_format is set), CREATE TRIGGER needs the SUPER privilege unless the
-- server variable log_bin_trust_function_creators is 1. Aurora gives no account SUPER, so set
-- log_bin_trust_function_creators = 1 in the DB cluster parameter group before
-- `idminter db migrate-legacy` (MySQL: SET PERSIST log_bin_trust_function_creators = 1; MariaDB:
-- the same variable in its configuration). Without it migrate-legacy stops with one error line
-- naming this setting, and resumes once it is set. The triggers only log row IDs into a table of
-- the same database, so trusting their creator loses nothing; no further grant is needed.

-- 1. The migration account: `idminter db migrate` / the registry_schema asset (DDL, yoyo's own
--    tables), `idminter db migrate-legacy | rollback-legacy | finalize-legacy` and the
--    legacy_registry_migration asset (triggers on the legacy table, LOCK TABLES for the swap,
--    RENAME and DROP TABLE, the copy's DELETEs).
CREATE USER IF NOT EXISTS 'idminter_migration'@'%' IDENTIFIED BY 'replace-with-the-migration-secret';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER ON `identifiers`.* TO 'idminter_migration'@'%';

-- 2. The runtime account: minting (lookups, free-ID claims FOR UPDATE, idempotent inserts,
--    provenance), the pool (top-ups, health), reconciliation (its scratch temporary tables,
--    repairs, the orphan ledger, retired IDs), checkpoints of resumable full works runs. It
--    reads the whole registry database: reconciliation must see the legacy table and the
--    migration's change log, when they exist, before it frees any ID (a table the account
--    cannot read is invisible to it, and its evidence would be missed). It writes only the
--    tables below. Table grants need the tables: run this after the migrations.
CREATE USER IF NOT EXISTS 'idminter_runtime'@'%' IDENTIFIED BY 'replace-with-the-runtime-secret';
GRANT SELECT, CREATE TEMPORARY TABLES ON `identifiers`.* TO 'idminter_runtime'@'%';
GRANT INSERT, UPDATE ON `identifiers`.`canonical_ids` TO 'idminter_runtime'@'%';
GRANT INSERT, UPDATE ON `identifiers`.`identifiers` TO 'idminter_runtime'@'%';
GRANT INSERT, UPDATE ON `identifiers`.`identifier_provenance` TO 'idminter_runtime'@'%';
GRANT INSERT, UPDATE, DELETE ON `identifiers`.`reconciliation_orphans` TO 'idminter_runtime'@'%';
GRANT INSERT ON `identifiers`.`retired_canonical_ids` TO 'idminter_runtime'@'%';
GRANT INSERT ON `identifiers`.`registry_recoveries` TO 'idminter_runtime'@'%';
GRANT INSERT, UPDATE ON `identifiers`.`works_run_checkpoints` TO 'idminter_runtime'@'%';
