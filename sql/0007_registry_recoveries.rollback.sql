DROP TABLE IF EXISTS registry_recoveries;
