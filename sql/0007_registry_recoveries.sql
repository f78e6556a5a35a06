-- depends: 0006_retired_canonical_ids
-- Each run of `idminter db recover-published --apply`: after the registry was restored to an
-- earlier point (Aurora point-in-time restore, a dump), it puts back the mappings that the
-- identified documents published after that point, so their canonical IDs never go to another
-- record. A restore rolls this table back with the rest; a recovery run after it is what the
-- works asset's guard looks for before minting resumes (docs/operations/tasks.md, "Restore
-- the registry").
CREATE TABLE IF NOT EXISTS registry_recoveries (
  Seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  RanAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  DocumentsRead BIGINT UNSIGNED NOT NULL,
  MappingsRestored BIGINT UNSIGNED NOT NULL,
  IdsReassigned BIGINT UNSIGNED NOT NULL,
  Conflicts BIGINT UNSIGNED NOT NULL,
  Store VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (Seq),
  INDEX idx_recoveries_ran_at (RanAt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
