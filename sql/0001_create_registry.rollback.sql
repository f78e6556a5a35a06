-- Drops `identifiers` only when it has the RFC 083 shape (a CreatedAt column): a legacy 1:1 table
-- of the same name, not yet migrated, must survive a rollback of this schema.
SET @drop_identifiers = (
  SELECT IF(COUNT(*) > 0, 'DROP TABLE identifiers', 'DO 0')
  FROM information_schema.columns
  WHERE table_schema = DATABASE() AND table_name = 'identifiers' AND column_name = 'CreatedAt'
);
PREPARE drop_identifiers FROM @drop_identifiers;
EXECUTE drop_identifiers;
DEALLOCATE PREPARE drop_identifiers;
DROP TABLE IF EXISTS canonical_ids;
