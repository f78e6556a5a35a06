-- depends: 0005_works_run_checkpoints
-- Canonical IDs that once identified a record and no longer do: the mapping that held the ID
-- is gone (a legacy row deleted during the migration, a mapping deleted by hand). A published ID
-- never goes to another record, so such an ID stays `assigned` in canonical_ids (the pool never
-- offers it) and `idminter reconcile --repair` never returns it to the pool.
--
-- The reconciliation fills this table from what it sees: every orphan (assigned, no mapping)
-- with evidence that a mapping once held it, with the evidence as Reason. Recording it keeps
-- that evidence after its source is gone (the legacy table finalized, the change log emptied).
-- An operator who must delete a mapping by hand should retire its ID here in the same
-- transaction. Nothing here is read by the minter.
CREATE TABLE IF NOT EXISTS retired_canonical_ids (
  CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  Reason VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  RetiredAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (CanonicalId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
