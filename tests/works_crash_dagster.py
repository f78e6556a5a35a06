"""One Dagster run of a window partition of `identified_works` in a real process that SIGKILLs
itself at its n-th batch write (`works_crash`: after the batch's mint committed, before its
write).

`IDMINTER_TEST_KILL_AT_WRITE=n python tests/works_crash_dagster.py PARTITION_KEY BATCH_SIZE`,
with the registry's settings and `WORKS_STORE_PATH` in the environment. Used by
tests/test_works_dagster_resume.py.
"""

import os
import sys
from pathlib import Path

import dagster as dg
import works_crash  # noqa: F401 (patches the embedded store to die at the n-th write)
from dagster_helpers import works_resources

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.defs.works.assets import identified_works

if __name__ == "__main__":
    result = dg.materialize(
        [identified_works],
        partition_key=sys.argv[1],
        run_config={"ops": {"identified_works": {"config": {"batch_size": int(sys.argv[2])}}}},
        resources=works_resources(
            DatabaseSettings.from_env(),
            Path(os.environ["WORKS_STORE_PATH"]),
            Path(os.environ["IDMINTER_TEST_ALERTS_LOG"]),
        ),
        raise_on_error=False,
    )
    sys.exit(0 if result.success else 1)
