"""What pipeline runs over chosen works did, summed over the runs.

The sweeper mints the works an audit found missing or stale, and the succession repair rewrites
chain holders' documents: each runs the pipeline a chunk of works at a time and reports the
runs' figures together, with the first failures in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from idminter_pipeline.works.run_summary import RunSummary, WorkFailure


@dataclass(kw_only=True)
class RerunTotals:
    works_minted: int = 0  # works the runs read
    works_written: int = 0
    works_superseded: int = 0
    works_failed: int = 0
    failures: list[WorkFailure] = field(default_factory=list)

    def add_run(self, summary: RunSummary, *, listed: int) -> None:
        """`summary`'s figures added, and its failures kept until `listed` are."""
        self.works_minted += summary.works_read
        self.works_written += summary.works_written
        self.works_superseded += summary.works_superseded
        self.works_failed += summary.failed
        room = listed - len(self.failures)
        self.failures.extend(summary.failures[: max(room, 0)])
