"""The works pipeline in Dagster: `identified_works` partitioned by `indexed_at` windows (each
window audited from the stores), the explicit-ids job, the schedule, the sweeper of works the
windows missed, a reindex candidate's identity impact, the failure sensors and the
pool-exhaustion recovery."""

import dagster as dg

from idminter_pipeline.defs.works.assets import candidate_impact, identified_works, swept_works
from idminter_pipeline.defs.works.jobs import (
    assess_candidate_impact_job,
    mint_works_by_id_job,
    mint_works_job,
    replenish_and_mint_works_by_id_job,
    replenish_and_mint_works_job,
    sweep_works_job,
)
from idminter_pipeline.defs.works.resources import (
    churn_guard_from_env,
    downstream_from_env,
    impact_candidate_from_env,
    works_store_from_env,
)
from idminter_pipeline.defs.works.schedules import mint_latest_works_window, sweep_missing_works
from idminter_pipeline.defs.works.sensors import pool_exhaustion_recovery, works_run_failure_alert

defs = dg.Definitions(
    assets=[identified_works, swept_works, candidate_impact],
    jobs=[
        mint_works_job,
        mint_works_by_id_job,
        replenish_and_mint_works_job,
        replenish_and_mint_works_by_id_job,
        sweep_works_job,
        assess_candidate_impact_job,
    ],
    schedules=[mint_latest_works_window, sweep_missing_works],
    sensors=[works_run_failure_alert, pool_exhaustion_recovery],
    resources={
        "works_store": works_store_from_env(),
        "churn_guard": churn_guard_from_env(),
        "downstream": downstream_from_env(),
        "impact_candidate": impact_candidate_from_env(),
    },
)
