-- compose.yaml's MySQL: the development account `id_minter` (MYSQL_USER, to which the image gave
-- ALL on `identifiers`) gets exactly what the project-local MariaDB's bootstrap gives it
-- (idminter_pipeline/local_servers/mariadb.py, LOCAL_PRIVILEGES): the registry's rows, its schema
-- migrations, the legacy migration's triggers and table locks, reconciliation's temporary tables,
-- on the registry, on its scratch copies (identifiers_shadow: `idminter db load-dump`) and on the
-- databases the tests and benchmarks create per session. Nothing on
-- *.*, no GRANT OPTION. Production splits this into two accounts: deploy/registry-grants.sql.
REVOKE ALL PRIVILEGES ON `identifiers`.* FROM 'id_minter'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER ON `identifiers`.* TO 'id_minter'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER ON `identifiers\_%`.* TO 'id_minter'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER ON `idminter\_test\_%`.* TO 'id_minter'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, CREATE TEMPORARY TABLES, LOCK TABLES, TRIGGER ON `idminter\_bench\_%`.* TO 'id_minter'@'%';
