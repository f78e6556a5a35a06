ALTER TABLE legacy_migration_state
  DROP COLUMN MappingsCopied,
  DROP COLUMN MappingCursorSourceId,
  DROP COLUMN MappingCursorSourceSystem,
  DROP COLUMN MappingCursorOntologyType,
  DROP COLUMN CopyTable;
