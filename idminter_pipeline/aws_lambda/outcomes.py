"""What the minter Lambda tells the world about an invocation: the error name Step Functions
matches, the invocation's outcome (its totals, computed once from the pipeline's run summaries,
and which works are done), the per-batch summary a state machine keeps, the run summary log
line, and the CloudWatch metrics (Embedded Metric Format).

**Error names.** Lambda reports an exception by its class name (`errorType`), and Step Functions
matches `Retry`/`Catch` clauses against that name exactly: a subclass is another name. So the
handler reports every error under one of a small, stable set of names (`REPORTED_ERROR_NAMES`),
each of which deploy/aws/minter.yaml decides on by name (tests/test_state_machine_errors.py).

**Batch summaries.** A Map state keeps one result per batch, and Step Functions fails an execution
whose state passes 256 KB. A batch invoked by the state machine (its request carries `batch`:
`{"index", "count"}`) is answered with counts, plus failure details only while they fit the
batch's share of `SUMMARY_BUDGET_BYTES`; the state machine refuses more than `MAX_BATCHES`
batches before minting anything, so its output stays under the quota whatever the input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from idminter_pipeline.core.errors import (
    DownstreamNotificationError,
    InvalidInputError,
    ObjectStorageError,
    PoolExhaustedError,
    RegistryContentionError,
    RegistryUnavailableError,
    WorksStoreError,
)
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.release import release_tag
from idminter_pipeline.core.settings import env_text
from idminter_pipeline.works.documents import Stage
from idminter_pipeline.works.run_summary import RunSummary

# The handler's logger: an invocation's lines share one name whichever module writes them.
logger = logging.getLogger("idminter_pipeline.aws_lambda.handler")


class UnexpectedError(Exception):
    """Any error the handler did not expect (a bug, an unknown library error): reported under
    this one name, its message naming the original class."""


# In matching order: an error is reported under the first class it is an instance of. Classes
# with subclasses are re-raised as themselves, so each must take a single message argument.
REPORTED_ERRORS: tuple[type[Exception], ...] = (
    PoolExhaustedError,
    RegistryContentionError,
    RegistryUnavailableError,
    WorksStoreError,
    DownstreamNotificationError,
    ObjectStorageError,
    InvalidInputError,
)
REPORTED_ERROR_NAMES = frozenset(
    [cls.__name__ for cls in REPORTED_ERRORS] + [UnexpectedError.__name__]
)


def reported_class(error_type: type[BaseException]) -> type[Exception]:
    """The class whose name Lambda reports for an error of `error_type`."""
    for reported in REPORTED_ERRORS:
        if issubclass(error_type, reported):
            return reported
    return UnexpectedError


def as_reported(error: Exception) -> Exception:
    """`error` itself when its class is a reported one, else the same message under the
    reported name (the original stays its `__cause__`, in the stack trace)."""
    reported = reported_class(type(error))
    if type(error) is reported:
        return error
    if reported is UnexpectedError:
        return UnexpectedError(f"{type(error).__name__}: {error}")
    return reported(str(error))


# --- The invocation's outcome ---------------------------------------------------------------


@dataclass(frozen=True)
class InvocationTotals:
    """The figures of an invocation, summed over its pipeline runs once."""

    works_read: int = 0
    works_written: int = 0
    works_failed: int = 0
    works_superseded: int = 0
    identifiers_minted: int = 0
    identifiers_inherited: int = 0
    duration_seconds: float = 0.0
    failures_by_stage: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, summaries: Sequence[RunSummary]) -> InvocationTotals:
        return cls(
            works_read=sum(s.works_read for s in summaries),
            works_written=sum(s.works_written for s in summaries),
            works_failed=sum(s.failed for s in summaries),
            # Works a newer record of their succession chain holds the document of
            # (works.succession): neither written nor failed; `superseded` lists only the first.
            works_superseded=sum(s.works_superseded for s in summaries),
            identifiers_minted=sum(s.minted for s in summaries),
            identifiers_inherited=sum(s.inherited for s in summaries),
            duration_seconds=round(sum(s.duration_seconds for s in summaries), 3),
            failures_by_stage={
                str(stage): sum(s.failures_by_stage[str(stage)] for s in summaries)
                for stage in Stage
            },
        )

    def as_log_fields(self) -> dict[str, int | float]:
        return {
            "works_read": self.works_read,
            "works_written": self.works_written,
            "works_failed": self.works_failed,
            "identifiers_minted": self.identifiers_minted,
            "identifiers_inherited": self.identifiers_inherited,
            "works_superseded": self.works_superseded,
            "duration_seconds": self.duration_seconds,
        }


@dataclass(frozen=True)
class InvocationOutcome:
    """What an invocation's pipeline runs did: the totals, the works done (written and
    announced, or superseded: nothing to retry) and the first failure of each work that was
    not."""

    summaries: tuple[RunSummary, ...]
    totals: InvocationTotals
    done: frozenset[str]
    failed: dict[str, str]

    @classmethod
    def of(cls, summaries: Sequence[RunSummary]) -> InvocationOutcome:
        failed: dict[str, str] = {}
        for summary in summaries:
            for failure in summary.failures:
                failed.setdefault(failure.work_id, f"{failure.stage}: {failure.detail}")
        done = {w for summary in summaries for w in summary.processed if w not in failed}
        done.update(s.work_id for summary in summaries for s in summary.superseded)
        return cls(tuple(summaries), InvocationTotals.of(summaries), frozenset(done), failed)

    def processed(self) -> list[str]:
        """The works done and written, in the order they were written."""
        return [w for s in self.summaries for w in s.processed if w in self.done]

    def successful_canonical_ids(self) -> list[str]:
        """The canonical IDs of the works done and written, in the order they were written."""
        return [
            canonical_id
            for s in self.summaries
            for work_id, canonical_id in s.written_canonical_ids.items()
            if work_id in self.done
        ]

    def failures(self, display_id: Callable[[str], str]) -> list[dict[str, str]]:
        """Every recorded failure, its work named by `display_id`."""
        return [
            {**f.as_dict(), "sourceIdentifier": display_id(f.work_id)}
            for s in self.summaries
            for f in s.failures
        ]

    def report(self, kind: str, *, batch_item_failures: int | None = None, **counts: int) -> None:
        """The invocation's log line and metrics."""
        log_run(kind, self, **counts)
        emit_metrics(self.totals, batch_item_failures=batch_item_failures)


# --- Per-batch summaries ---------------------------------------------------------------------

# Step Functions' payload quota is 256 KB; the summaries of all batches share this much of it,
# the rest is for the job id and the execution's own fields.
SUMMARY_BUDGET_BYTES = 200_000
# The state machine refuses more batches than this (each summary's counts take ~200 bytes).
MAX_BATCHES = 1_000


def _size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def batch_summary(
    outcome: InvocationOutcome, index: int, count: int, display_id: Callable[[str], str]
) -> dict[str, Any]:
    """Counts for one batch, and its failures while they fit the batch's share of the budget."""
    failures = outcome.failures(display_id)
    totals = outcome.totals
    result: dict[str, Any] = {
        "batch": index,
        "batchFailed": False,
        "works": totals.works_read,
        "written": totals.works_written,
        "failed": totals.works_failed,
        "minted": totals.identifiers_minted,
        "inherited": totals.identifiers_inherited,
        "superseded": totals.works_superseded,
        "failures": [],
        "failuresOmitted": 0,
    }
    budget = SUMMARY_BUDGET_BYTES // max(count, 1)
    used = _size(result)
    for position, failure in enumerate(failures):
        shown = {**failure, "detail": excerpt(failure["detail"], 300)}
        cost = _size(shown) + 1
        if used + cost > budget:
            result["failuresOmitted"] = len(failures) - position
            break
        result["failures"].append(shown)
        used += cost
    # Failures beyond the pipeline's recording limit were counted but never kept.
    result["failuresOmitted"] += max(0, result["failed"] - len(failures))
    return result


# --- Logs and metrics ------------------------------------------------------------------------

METRICS_NAMESPACE_ENV = "IDMINTER_METRICS_NAMESPACE"
DEFAULT_METRICS_NAMESPACE = "IdMinter"
# The metrics' `service` dimension: the function's name (Lambda sets it), so two stacks in one
# account keep their figures apart.
FUNCTION_NAME_ENV = "AWS_LAMBDA_FUNCTION_NAME"
DEFAULT_SERVICE = "minter"


def configure_logging() -> None:
    """Make the root logger emit INFO. Lambda's runtime sets the root level from the function's
    ApplicationLogLevel (`AWS_LAMBDA_LOG_LEVEL`); without one Python's WARNING default would drop
    every run summary. Only inside Lambda (which sets the function's name): a process that
    imports the handler keeps its own logging."""
    root = logging.getLogger()
    in_lambda = env_text(FUNCTION_NAME_ENV) is not None
    if in_lambda and not env_text("AWS_LAMBDA_LOG_LEVEL") and root.level > logging.INFO:
        root.setLevel(logging.INFO)


def log_run(kind: str, outcome: InvocationOutcome, **counts: int) -> None:
    """One structured line per invocation: with the runtime's JSON log format each key of
    `run` is a field CloudWatch Logs Insights can query; `release` says which build ran it."""
    totals = outcome.totals
    run = {"kind": kind, "release": release_tag(), **counts, **totals.as_log_fields()}
    logger.info(
        "%s: %d works read, %d written, %d failed",
        kind,
        totals.works_read,
        totals.works_written,
        totals.works_failed,
        extra={"run": run, "run_summaries": [_compact(s) for s in outcome.summaries]},
    )


def _compact(summary: RunSummary) -> dict[str, Any]:
    # The first failures only: a log line stays small whatever the batch.
    return summary.as_dict() | {"failures": [f.as_dict() for f in summary.failures[:20]]}


def emit_metrics(totals: InvocationTotals, batch_item_failures: int | None = None) -> None:
    """The invocation's figures as CloudWatch Embedded Metric Format lines on stdout, which
    CloudWatch Logs turns into metrics in `IDMINTER_METRICS_NAMESPACE`, dimension `service` (the
    function's name), and for WorksFailedByStage `Stage` too."""
    namespace = env_text(METRICS_NAMESPACE_ENV, DEFAULT_METRICS_NAMESPACE)
    service = env_text(FUNCTION_NAME_ENV, DEFAULT_SERVICE)
    # A provider per document: `Metrics` keeps its figures in class-level state, shared by every
    # instance (and thread) of the process.
    metrics = AmazonCloudWatchEMFProvider(namespace=namespace, service=service)
    count = MetricUnit.Count
    figures = {
        "WorksRead": totals.works_read,
        "WorksWritten": totals.works_written,
        "WorksFailed": totals.works_failed,
        "WorksSuperseded": totals.works_superseded,
        "IdentifiersMinted": totals.identifiers_minted,
        "IdentifiersInherited": totals.identifiers_inherited,
    }
    if batch_item_failures is not None:
        figures["BatchItemFailures"] = batch_item_failures
    for name, value in figures.items():
        metrics.add_metric(name=name, unit=count, value=value)
    metrics.add_metric(name="RunDuration", unit=MetricUnit.Seconds, value=totals.duration_seconds)
    metrics.flush_metrics()
    for stage, failed in totals.failures_by_stage.items():
        # One document per stage: its Stage dimension applies to all it holds.
        by_stage = AmazonCloudWatchEMFProvider(namespace=namespace, service=service)
        by_stage.add_dimension(name="service", value=service)  # in the dashboard's order
        by_stage.add_dimension(name="Stage", value=stage)
        by_stage.add_metric(name="WorksFailedByStage", unit=count, value=failed)
        by_stage.flush_metrics()
