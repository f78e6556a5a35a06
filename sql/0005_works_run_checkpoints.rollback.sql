DROP TABLE IF EXISTS works_run_checkpoints;
