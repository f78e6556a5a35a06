-- RFC 083 registry: a pool of canonical IDs and many source identifiers to one canonical ID.
--
-- Character set and collation (README, "Character set and collation"):
-- * source identifier parts are utf8mb4 / utf8mb4_bin: every Unicode character fits, and keys
--   compare by code point, so case and accents always distinguish two sources. utf8mb4_bin is
--   the only exact collation that exists on both MySQL 8.0 and MariaDB 10.11; it is PAD SPACE,
--   which is why the application rejects leading and trailing whitespace instead of storing it.
-- * canonical IDs are ascii / ascii_bin: the public format is ASCII, and legacy IDs copy as-is.
-- Three utf8mb4 VARCHAR(255) key parts take 3,060 bytes, inside InnoDB's 3,072-byte key limit.
--
-- IF NOT EXISTS on `identifiers`: a registry still holding the legacy 1:1 table of the same name
-- keeps it until `idminter db migrate-legacy` copies and swaps it.

CREATE TABLE IF NOT EXISTS canonical_ids (
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  Status ENUM('free', 'assigned') CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'free',
  CreatedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (CanonicalId),
  INDEX idx_free (Status, CanonicalId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;

CREATE TABLE IF NOT EXISTS identifiers (
  OntologyType VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SourceSystem VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SourceId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  CreatedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (OntologyType, SourceSystem, SourceId),
  CONSTRAINT fk_identifiers_canonical_id
    FOREIGN KEY (CanonicalId) REFERENCES canonical_ids (CanonicalId),
  INDEX idx_canonical (CanonicalId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC;
