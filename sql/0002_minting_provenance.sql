-- depends: 0001_create_registry
-- Minting provenance: every inheritance the minter performs (a successor taking its
-- predecessor's canonical ID) and every declared predecessor that disagrees with the successor's
-- existing mapping. A new table, because `identifiers` must not be altered (sql/README.md).
--
-- * Seq is the order of events: rows written in one statement share a CreatedAt, so alias
--   ordering and audits use Seq, never timestamps.
-- * EventKey is SHA-256 of (kind, successor key, predecessor key), computed by the minter: the
--   three utf8mb4 key parts of two identifiers do not fit in one InnoDB index, and the hash makes
--   a repeated event (a backfill re-running a mismatch) update SeenCount instead of piling up rows.
-- * No foreign key to canonical_ids: a mismatch may name a predecessor that has no ID at all,
--   and the minter writes these rows in the same transaction as the mappings they describe.
CREATE TABLE IF NOT EXISTS identifier_provenance (
  Seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  EventKey BINARY(32) NOT NULL,
  Kind ENUM('inherited', 'predecessor_mismatch') CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  SuccessorOntologyType VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SuccessorSourceSystem VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SuccessorSourceId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PredecessorOntologyType VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PredecessorSourceSystem VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  PredecessorSourceId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  -- The successor's canonical ID (for an inheritance, also the predecessor's).
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- The predecessor's canonical ID when the event was recorded; NULL if it had none.
  PredecessorCanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NULL,
  JobId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  CreatedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  SeenCount INT UNSIGNED NOT NULL DEFAULT 1,
  LastSeenAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  LastJobId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  PRIMARY KEY (Seq),
  UNIQUE KEY uq_provenance_event (EventKey),
  INDEX idx_provenance_canonical (CanonicalId, Seq),
  INDEX idx_provenance_kind (Kind, Seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
