DELETE FROM works_run_checkpoints WHERE RunKind <> 'full';
ALTER TABLE works_run_checkpoints
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (JobId),
  DROP COLUMN RunKind;
