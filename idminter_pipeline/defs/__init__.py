"""The Dagster layer: a folder per domain, one file per Dagster kind, over the domain modules.

`idminter_pipeline.definitions` loads every domain's `defs` into the one `Definitions`
(`dg.load_from_defs_folder`).
"""

import warnings

import dagster as dg

# The works asset's backfill policy is a beta parameter and its partitioned checks a preview
# one. Dagster warns as the definitions are built, in every process that loads them: a wall of
# the same warnings at the top of `make ui`, `idminter local-run` and every run's log.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
