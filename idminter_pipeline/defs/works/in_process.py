"""The `mint_works` job run in this process over a range of windows: `idminter local-run` (and
`make run`) mint the sample through the real Dagster job, on the instance `make ui` opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from idminter_pipeline.core.errors import IdMinterError
from idminter_pipeline.core.settings import env_text, project_root
from idminter_pipeline.defs.alerts.resources import alerts_from_env
from idminter_pipeline.defs.resources import registry_database_from_env
from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.defs.works.jobs import mint_works_job
from idminter_pipeline.defs.works.partitions import WORKS_PARTITIONS
from idminter_pipeline.defs.works.resources import (
    churn_guard_from_env,
    downstream_from_env,
    works_store_from_env,
)

# The local instance's settings, which `make ui` links into DAGSTER_HOME too. Kept out of the
# project root: `dagster dev` warns about a dagster.yaml there that DAGSTER_HOME does not use.
LOCAL_INSTANCE_CONFIG = project_root() / "deploy" / "local" / "dagster.yaml"


def mint_windows_in_process(first_indexed_at: Any, last_indexed_at: Any) -> dict[str, Any]:
    """Materialize `identified_works` for the windows covering the two times, in one run of the
    `mint_works` job on the local Dagster instance (so `make ui` shows the run)."""
    first = WORKS_PARTITIONS.get_partition_key_for_timestamp(first_indexed_at.timestamp())
    last = WORKS_PARTITIONS.get_partition_key_for_timestamp(last_indexed_at.timestamp())
    home = env_text("DAGSTER_HOME")
    if home:
        # The same instance `make ui` opens, so the UI shows this run.
        Path(home).mkdir(parents=True, exist_ok=True)
        config = Path(home) / "dagster.yaml"
        if not config.exists() and LOCAL_INSTANCE_CONFIG.exists():
            config.symlink_to(LOCAL_INSTANCE_CONFIG)
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    # The code location's job and asset, with resources read from the environment now (the
    # module-level `Definitions` read it once, at import).
    job = dg.Definitions(
        assets=[identified_works],
        jobs=[mint_works_job],
        resources={
            "registry_database": registry_database_from_env(),
            "works_store": works_store_from_env(),
            "churn_guard": churn_guard_from_env(),
            "downstream": downstream_from_env(),
            "alerts": alerts_from_env(),
        },
    ).resolve_job_def(mint_works_job.name)
    with instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            # A window with a failed work fails the run (a blocking check) after every window
            # is recorded: report it below rather than as a traceback.
            raise_on_error=False,
        )
    materializations = result.asset_materializations_for_node("identified_works")
    if not materializations:
        failure = result.get_run_failure_event()
        raise IdMinterError(
            f"Dagster run {result.run_id} minted nothing: "
            + (failure.message if failure is not None else "no window was recorded")
        )
    # Each window's figures are on its own partition: the run's are their sums.
    figures: dict[str, Any] = {}
    for materialization in materializations:
        for key, value in materialization.metadata.items():
            if isinstance(value.value, int | float) and not isinstance(value.value, bool):
                figures[key] = figures.get(key, 0) + value.value
            elif key == "failures_by_stage":
                stages = figures.setdefault(key, {})
                for stage, count in value.value.items():
                    stages[stage] = stages.get(stage, 0) + count
    figures["run_id"] = result.run_id
    figures["partitions"] = f"{first} .. {last}"
    figures["windows"] = len(materializations)
    figures["windows_with_failures"] = sorted(
        m.partition for m in materializations if m.metadata["works_failed"].value
    )
    return figures
