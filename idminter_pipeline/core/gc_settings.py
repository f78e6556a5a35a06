"""Garbage-collector settings for works runs, applied by the process entry points only.

A works batch allocates hundreds of thousands of short-lived dicts and lists (decoded documents,
identifiers, requests). With CPython's default threshold the collector runs every 700 container
allocations, promotes each batch's still-alive documents into older generations, and every
older collection walks every object the process holds, Dagster's and pandas' included: it took
a third of a re-run's time. Documents are trees, freed by reference counting the moment a batch
is done; they never need the collector.

`batch_run_collector` therefore, for the duration of a run:

- freezes what exists when the run starts (`gc.freeze()`: imported modules, definitions,
  connections), so no collection walks it again;
- collects the young generation every 100,000 allocations instead of 700 (older generations keep
  their default ratios), so cycles, which a run rarely makes, are still collected;

and restores the previous settings afterwards. It is entered by the CLI's `idminter mint`, the
Lambda handler and the Dagster works runs (`defs/works/runs.py`), never inside library calls: a
library must not change a process-wide setting behind its caller's back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION_THRESHOLD = 100_000


@contextmanager
def batch_run_collector() -> Iterator[None]:
    """Collector settings for one works run (see the module docstring); restored on exit."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, previous[1], previous[2])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
