-- depends: 0006_retired_canonical_ids
-- What the database itself needs to keep a published canonical ID on its record forever
-- (docs/design/registry-invariants.md). The triggers that enforce it are in
-- 0008_registry_invariant_triggers.py (a trigger body cannot be written portably in a file
-- yoyo splits, and the guards on `identifiers` are created only once it has the RFC 083 shape).

-- Permission to change or delete a mapping, or to return a once-mapped ID, for one session:
-- the guards let a statement through only if this table holds a row for the session's
-- CONNECTION_ID() and login USER(). Only the migration (admin) account may write it
-- (deploy/registry-grants.sql); the sanctioned paths insert the row and delete it again in the
-- same transaction as their change, so none outlives it.
CREATE TABLE IF NOT EXISTS mapping_change_permits (
  ConnectionId BIGINT UNSIGNED NOT NULL,
  Account VARCHAR(288) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  Reason VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  CreatedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (ConnectionId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every change to a mapping the guards let through, written by the guard itself (so no path
-- can change a mapping without leaving its row): the mapping before and after, who, and why.
-- Its CanonicalIds also count as "once mapped": the pool never gets them back.
CREATE TABLE IF NOT EXISTS mapping_changes (
  Seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  Action ENUM('updated', 'deleted') CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  OntologyType VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SourceSystem VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SourceId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  NewOntologyType VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  NewSourceSystem VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  NewSourceId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  NewCanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NULL,
  Account VARCHAR(288) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  Reason VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  ChangedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (Seq),
  INDEX idx_mapping_changes_canonical (CanonicalId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row when this registry is a fork of another (a test registry loaded from a dump or an
-- Aurora clone), written by `idminter db mark-fork` / `idminter db load-dump`. A fork draws new
-- IDs only from the fork partition of the ID space (core/canonical_ids.py, docs/design/forks.md).
CREATE TABLE IF NOT EXISTS registry_forks (
  Id TINYINT UNSIGNED NOT NULL,
  Origin VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  FreeIdsDropped BIGINT UNSIGNED NOT NULL DEFAULT 0,
  RecordedBy VARCHAR(288) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  ForkedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (Id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Production no longer hands out IDs of the fork partition (first character z): drop the free
-- ones its pool holds (never handed out, so nothing is lost; one a mapping uses stays).
DELETE FROM canonical_ids
WHERE Status = 'free' AND CanonicalId >= 'z' AND CanonicalId < '{'
  AND NOT EXISTS (SELECT 1 FROM identifiers i WHERE i.CanonicalId = canonical_ids.CanonicalId);
