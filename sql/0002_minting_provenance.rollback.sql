DROP TABLE IF EXISTS identifier_provenance;
