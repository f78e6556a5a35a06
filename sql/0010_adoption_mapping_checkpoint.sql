-- depends: 0009_registry_recoveries
-- `idminter db adopt` copies the port's canonical_ids (keyset on CanonicalId: CopyCursor,
-- RowsCopied), then the port's mappings in the order of their own primary key, so that both
-- the read and the insert follow the clustered index. The mappings' walk keeps its own
-- checkpoint here, committed with each batch: an interrupted adoption resumes in whichever table
-- it stopped, after its last committed batch. The legacy migration leaves these at their
-- defaults.
ALTER TABLE legacy_migration_state
  ADD COLUMN CopyTable ENUM('canonical_ids', 'identifiers')
    CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'canonical_ids',
  -- The last port mapping copied: its primary key (OntologyType, SourceSystem, SourceId), as
  -- read from the port's table (compared again in that table's collation).
  ADD COLUMN MappingCursorOntologyType VARCHAR(255)
    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL,
  ADD COLUMN MappingCursorSourceSystem VARCHAR(255)
    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL,
  ADD COLUMN MappingCursorSourceId VARCHAR(255)
    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL,
  ADD COLUMN MappingsCopied BIGINT UNSIGNED NOT NULL DEFAULT 0;
