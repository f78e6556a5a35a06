-- depends: 0004_legacy_migration_state
-- Checkpoints of full works runs (`idminter mint --full --job-id J`, the Lambda's `full: true`):
-- after each batch is written, the run records the scan position of its last work here, so a run
-- re-started with the same job id after a crash or a timeout resumes after its last written
-- batch. Nothing here is read by the minter.
--
-- JobId is VARBINARY (the job id's UTF-8 bytes) so that ids differing only in case or trailing
-- spaces are different jobs, as they are everywhere else.
CREATE TABLE IF NOT EXISTS works_run_checkpoints (
  JobId VARBINARY(1020) NOT NULL,
  -- The works store the run reads (`WorksStore.describe()`): a job id never resumes elsewhere.
  Store TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  -- The last work of the last written batch, in the scan's (indexed_at, id) order; NULL before
  -- the first batch.
  LastIndexedAtUs BIGINT NULL DEFAULT NULL,
  LastWorkId TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL,
  WorksRead BIGINT UNSIGNED NOT NULL DEFAULT 0,
  WorksWritten BIGINT UNSIGNED NOT NULL DEFAULT 0,
  WorksFailed BIGINT UNSIGNED NOT NULL DEFAULT 0,
  Batches BIGINT UNSIGNED NOT NULL DEFAULT 0,
  StartedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UpdatedAt TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  -- Set when the run reached the end of the index; the next run with this job id starts over.
  FinishedAt TIMESTAMP(6) NULL DEFAULT NULL,
  PRIMARY KEY (JobId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
