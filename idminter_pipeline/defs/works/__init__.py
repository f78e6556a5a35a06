"""The works pipeline in Dagster: `identified_works` partitioned by `indexed_at` windows, the
explicit-ids job, the schedule, the failure sensors and the pool-exhaustion recovery."""
