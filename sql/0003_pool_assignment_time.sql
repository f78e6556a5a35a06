-- depends: 0001_create_registry
-- When each canonical ID was assigned, so pool health can report mint rates and forecast when
-- the free pool runs out.
--
-- ON UPDATE CURRENT_TIMESTAMP(6) sets AssignedAt whenever a row changes, so a minter that only
-- runs `UPDATE canonical_ids SET Status = 'assigned' ...` records the time without knowing the
-- column exists. Rows inserted as free (the pool top-up) and legacy rows copied in by INSERT
-- stay NULL. Rates count rows with Status = 'assigned' only, so an ID a minter hands back to the
-- pool (an UPDATE that also stamps AssignedAt) is not counted.
--
-- idx_assigned_at leads with AssignedAt so "assigned since X" is an index-only range scan, and so
-- the optimizer never prefers it over idx_free for the sensor's `Status = 'free'` count.
ALTER TABLE canonical_ids
  ADD COLUMN AssignedAt TIMESTAMP(6) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(6),
  ADD INDEX idx_assigned_at (AssignedAt, Status);
