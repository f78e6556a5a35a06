ALTER TABLE canonical_ids
  DROP INDEX idx_assigned_at,
  DROP COLUMN AssignedAt;
