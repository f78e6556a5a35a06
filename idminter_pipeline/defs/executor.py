"""How a run executes its steps: each in a process of its own, as Dagster's default executor
does (a step that crashes or runs out of memory fails alone and the run records it; retries
and concurrency pools work per step), but forked from a server that imported the code location
once per run. A step then starts in well under a second; a process started afresh imports
Dagster and the code location again, about 3 CPU-seconds a step."""

from __future__ import annotations

import dagster as dg

# The module the code location is served from (workspace.yaml, the images' commands).
CODE_LOCATION_MODULE = "idminter_pipeline.definitions"

_FORKED_STEPS = {"start_method": {"forkserver": {"preload_modules": [CODE_LOCATION_MODULE]}}}

# An empty schema: a run config's `execution` section is refused naming what it held, where a
# configured dict would accept any and silently ignore it.
RUN_EXECUTOR = dg.multiprocess_executor.configured(
    lambda _: _FORKED_STEPS, name="forked_multiprocess", config_schema={}
)
