"""The works pipeline in Dagster: `identified_works` partitioned by `indexed_at` windows (each
window audited from the stores), the explicit-ids job, the schedule, the sweeper of works the
windows missed, a reindex candidate's identity impact, the failure sensors and the
pool-exhaustion recovery."""
