"""The per-batch summary the state machine keeps: counts always, failure details only while they
fit the batch's share of the budget, so the execution's output stays under Step Functions' 256 KB
quota whatever the batches hold."""

from __future__ import annotations

import json

import pytest

from idminter_pipeline.aws_lambda.events import step_functions_id
from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.aws_lambda.outcomes import (
    MAX_BATCHES,
    SUMMARY_BUDGET_BYTES,
    InvocationOutcome,
    batch_summary,
)
from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.works.documents import Stage
from idminter_pipeline.works.run_summary import RunSummary, WorkFailure

STEP_FUNCTIONS_QUOTA = 256 * 1024


def _summary(works: int, failed: int, detail_length: int = 2_000) -> RunSummary:
    summary = RunSummary(scope="ids", store="sqlite", works_read=works)
    summary.works_written = works - failed
    summary.minted = works - failed
    for n in range(failed):
        summary.fail(
            WorkFailure(f"Work[sierra-system-number/b{n}]", Stage.READ, "x" * detail_length)
        )
    return summary


def _size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def test_a_batch_whose_failures_fit_lists_them_all():
    result = batch_summary(
        InvocationOutcome.of([_summary(10, 2, detail_length=50)]), 0, 3, step_functions_id
    )
    assert result["works"] == 10 and result["written"] == 8 and result["failed"] == 2
    assert [f["sourceIdentifier"] for f in result["failures"]] == [
        "sierra-system-number/b0",
        "sierra-system-number/b1",
    ]
    assert result["failuresOmitted"] == 0


@pytest.mark.parametrize("count", [1, 20, 200, MAX_BATCHES])
def test_every_batch_failing_every_work_still_fits_the_quota(count):
    """The worst case: each of `count` batches of 5,000 works fails them all, with long details."""
    one = batch_summary(
        InvocationOutcome.of([_summary(5_000, 5_000)]), count - 1, count, step_functions_id
    )
    assert one["failed"] == 5_000
    assert one["failuresOmitted"] == 5_000 - len(one["failures"])
    output = {"jobId": "j" * 200, "anyBatchFailed": False, "batches": [one] * count}
    assert _size(output) < STEP_FUNCTIONS_QUOTA
    assert _size(one) <= max(SUMMARY_BUDGET_BYTES // count, 250)
    if count == 1:
        assert one["failures"]  # details where they fit
    assert all(len(f["detail"]) < 400 for f in one["failures"])  # each detail an excerpt


@pytest.mark.parametrize(
    "batch",
    [{"index": 2, "count": 2}, {"index": -1, "count": 2}, {"index": "0", "count": 1}, [0, 1]],
)
def test_a_bad_batch_position_is_refused_before_anything_is_minted(batch):
    with pytest.raises(InvalidInputError, match="batch must be"):
        handler({"sourceIdentifiers": ["mets/b1"], "jobId": "j", "batch": batch})
