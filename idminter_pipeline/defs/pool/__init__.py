"""The free-ID pool in Dagster: `canonical_id_pool`, its watermark checks, the replenishment job
and schedule, the pool sensor and the replenishment failure alert; the `id_pool` resource."""
