-- depends: 0011_registry_pool_guard_fast_path
-- Checkpoints of window runs (a Dagster partition of `identified_works`, `idminter mint
-- --window-start/--window-end`) beside those of full runs: a window's run records its scan
-- position after each written batch, so a run of the same window after a kill resumes after its
-- last written batch. RunKind says which a row is: 'full' (JobId is the run's job id) or 'window'
-- (JobId is the window's scope as `WindowScope.describe()` gives it, whatever run minted it), so a
-- job id never meets a window's checkpoint.
ALTER TABLE works_run_checkpoints
  ADD COLUMN RunKind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'full'
    FIRST,
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (RunKind, JobId);
