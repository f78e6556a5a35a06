"""What one run of the works pipeline did: counts, failures by stage, superseded works, and
where a resumed run took over. Read by every front door (CLI, Dagster, Lambda) and the reports
built on runs (sweeper, succession repair, audit)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from idminter_pipeline.core.limits import DEFAULT_BATCH_SIZE
from idminter_pipeline.core.reports import field_values
from idminter_pipeline.works.checkpoints import Checkpoint
from idminter_pipeline.works.churn_guard import ChurnTrip
from idminter_pipeline.works.documents import Stage
from idminter_pipeline.works.succession import SuccessionConflict

# A summary keeps this many failures in full; the counts by stage are always complete.
MAX_RECORDED_FAILURES = 10_000


@dataclass(frozen=True)
class WorkFailure:
    work_id: str
    stage: Stage
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"sourceIdentifier": self.work_id, "stage": str(self.stage), "detail": self.detail}


@dataclass(frozen=True)
class SupersededWork:
    """A work not written because `held_by`, a newer record of its chain, owns the document."""

    work_id: str
    held_by: str

    def as_dict(self) -> dict[str, str]:
        return {"sourceIdentifier": self.work_id, "heldBy": self.held_by}


@dataclass
class RunSummary:
    scope: str
    store: str
    job_id: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    works_read: int = 0
    works_written: int = 0
    batches: int = 0
    mint_calls: int = 0
    identifiers_found: int = 0
    existing: int = 0
    inherited: int = 0
    minted: int = 0
    failure_counts: Counter[str] = field(default_factory=Counter)
    failures: list[WorkFailure] = field(default_factory=list)
    churn_trips: list[ChurnTrip] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    # The canonical ID each work of `processed` was written under.
    written_canonical_ids: dict[str, str] = field(default_factory=dict)
    duration_seconds: float = 0.0
    # Written works the downstream topic accepted (0 when no notifier is configured).
    works_notified: int = 0
    # Works whose document a newer record of their chain holds: not written, not announced.
    works_superseded: int = 0
    superseded: list[SupersededWork] = field(default_factory=list)
    # Live successors sharing one canonical ID, one entry per canonical ID.
    succession_conflicts: dict[str, SuccessionConflict] = field(default_factory=dict)
    # A resumed run (a full run's job id, a window): what its earlier attempts did, and where
    # they stopped. The counts above are this attempt's only.
    resumed_from: Checkpoint | None = None
    # A window another run was running: this run minted it whole, without its checkpoint.
    checkpoint_held_elsewhere: bool = False

    @property
    def failures_by_stage(self) -> dict[str, int]:
        return {str(stage): self.failure_counts.get(str(stage), 0) for stage in Stage}

    @property
    def failed(self) -> int:
        return sum(self.failure_counts.values())

    def fail(self, failure: WorkFailure) -> None:
        self.failure_counts[str(failure.stage)] += 1
        if len(self.failures) < MAX_RECORDED_FAILURES:
            self.failures.append(failure)

    def supersede(self, work_id: str, held_by: str) -> None:
        self.works_superseded += 1
        if len(self.superseded) < MAX_RECORDED_FAILURES:
            self.superseded.append(SupersededWork(work_id, held_by))

    def as_dict(self) -> dict[str, Any]:
        # Reported derived (failure_counts, churn_trips) or kept for callers only (processed,
        # written_canonical_ids: one entry per work).
        unreported = {"failure_counts", "churn_trips", "processed", "written_canonical_ids"}
        return {
            **field_values(self, leave_out=unreported),
            "duration_seconds": round(self.duration_seconds, 3),
            "succession_conflicts": [c.as_dict() for c in self.succession_conflicts.values()],
            "works_failed": self.failed,
            "failures_by_stage": self.failures_by_stage,
            "churn_guard_trips": [trip.reason for trip in self.churn_trips],
        }
