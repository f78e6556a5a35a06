-- depends: 0001_create_registry
-- Bookkeeping for `idminter db migrate-legacy` and `idminter reconcile` (README, "Legacy registry
-- migration and reconciliation"). Nothing here is read by the minter.

-- One row (Id = 1) while a legacy migration is under way or kept for rollback. The copy commits
-- each batch together with CopyCursor, so a resumed run starts exactly after the last committed
-- batch: nothing is copied twice and nothing is skipped.
CREATE TABLE IF NOT EXISTS legacy_migration_state (
  Id TINYINT UNSIGNED NOT NULL,
  Phase ENUM('copying', 'copied', 'swapped', 'finalized')
    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- The last legacy CanonicalId copied (keyset cursor, compared in the legacy table's collation).
  CopyCursor VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL,
  RowsCopied BIGINT UNSIGNED NOT NULL DEFAULT 0,
  BatchesCopied BIGINT UNSIGNED NOT NULL DEFAULT 0,
  LegacyCreateTable TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  StartedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UpdatedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  SwappedAt TIMESTAMP(6) NULL DEFAULT NULL,
  FinalizedAt TIMESTAMP(6) NULL DEFAULT NULL,
  PRIMARY KEY (Id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Filled by triggers on the legacy table while the copy runs: the legacy CanonicalId of every
-- inserted, updated (old and new) or deleted row. Rows are deleted in the same transaction that
-- re-copies their IDs, so an entry committed late by a slow writer is never skipped.
CREATE TABLE IF NOT EXISTS legacy_migration_changes (
  Seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  CanonicalId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  ChangedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (Seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Assigned IDs that no mapping used when the reconciliation last looked, with when it first saw
-- them: an orphan goes back to the pool only once it has stayed an orphan for the grace period.
CREATE TABLE IF NOT EXISTS reconciliation_orphans (
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  FirstSeenAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  LastSeenAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (CanonicalId),
  INDEX idx_last_seen (LastSeenAt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
