"""One Dagster run of a window partition of `identified_works` in a real process that SIGKILLs
itself at its n-th batch write (`works_crash`: after the batch's mint committed, before its
write).

`IDMINTER_TEST_KILL_AT_WRITE=n python tests/works_crash_dagster.py PARTITION_KEY BATCH_SIZE`,
with the registry's settings and `WORKS_STORE_PATH` in the environment. Used by
tests/test_works_dagster_resume.py.
"""

import os
import sys

import dagster as dg
import works_crash  # noqa: F401 (patches the embedded store to die at the n-th write)

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.defs.works.resources import (
    ChurnGuardResource,
    DownstreamTopicResource,
    WorksStoreResource,
)

if __name__ == "__main__":
    result = dg.materialize(
        [identified_works],
        partition_key=sys.argv[1],
        run_config={"ops": {"identified_works": {"config": {"batch_size": int(sys.argv[2])}}}},
        resources={
            "works_store": WorksStoreResource(sqlite_path=os.environ["WORKS_STORE_PATH"]),
            "registry_database": RegistryDatabase.from_settings(DatabaseSettings.from_env()),
            "churn_guard": ChurnGuardResource(),
            "downstream": DownstreamTopicResource(),
            "alerts": AlertsResource(log_file=os.environ["IDMINTER_TEST_ALERTS_LOG"]),
        },
        raise_on_error=False,
    )
    sys.exit(0 if result.success else 1)
