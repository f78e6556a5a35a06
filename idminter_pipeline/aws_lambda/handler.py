"""The minter's Lambda entry point: one handler for Step Functions and for the legacy transformers'
queue (RFC 083, "Service rewrite" and "Hybrid operation with legacy transformers").

**Step Functions**, the Scala minter's shapes plus window and full scopes, exactly one scope:

    {"sourceIdentifiers": ["sierra-system-number/b1161044x", ...], "jobId": "..."}
    {"window": {"startTime": "2026-07-30T16:00:00Z", "endTime": "2026-07-30T16:15:00Z"}}
    {"full": true}

(snake_case keys are accepted too). A full run with a `jobId` records a checkpoint after each
written batch: invoked again with the same `jobId` after a timeout or a crash, it resumes after
the last written batch instead of starting again. Output:

    {"processedIdentifiers": [...], "jobId": ..., "failures": [{"sourceIdentifier", "stage",
     "detail"}]}

**Queued records**, from the SQS queue the legacy transformers (TEI, METS, ...) publish to:

- an SQS event source mapping event, `{"Records": [<SQS record>, ...]}`;
- an EventBridge Pipes batch, a JSON array of SQS records (a Pipe without input template) or of
  the requests the Pipe's input template makes, `{"messageId": "<$.messageId>",
  "sourceIdentifiers": ["<$.body.Message>"], "jobId": "<aws.pipes.pipe-name>"}`.

An SQS body is an SNS notification whose `Message` is the work's source identifier
(`Work[sierra-system-number/b1]` or `sierra-system-number/b1`), or that identifier bare. Bodies
are parsed with `strict_json`, so a duplicate key is refused. A record that cannot be read fails
alone, named by its message id. All records of one invocation are minted together, in one
pipeline run over one ids scope (one run per job id when records name different ones, which
records from one Pipe never do), so one registry transaction serves up to 5,000 works; a larger
batch (SQS and Pipes allow 10,000) takes one transaction per 5,000. The written works are
announced after the run's last write, each canonical ID once. A record whose jobId the registry
cannot store (over 255 characters, a control character) fails alone, like any other bad field.
The answer is SQS's partial batch response, `{"batchItemFailures": [{"itemIdentifier":
"<messageId>"}]}`, naming exactly the records whose works were not written and announced, so only
those are retried.

An array of requests without message ids is treated as several Step Functions requests minted
together, and answered in the Step Functions shape.

A request the state machine makes for one of its batches also carries `batch: {"index",
"count"}`; it is answered `{"jobId", "summary"}`, the batch's counts and the failures that fit its
share of the execution's payload quota (`outcomes.batch_summary`).

Bad events raise `InvalidInputError` naming what is wrong; errors that concern no single work
(pool exhausted, registry, store or downstream topic unreachable) raise too, so Step Functions
or the queue retries the whole batch. Every error leaves under one of the stable names of
`outcomes.REPORTED_ERROR_NAMES`, which the state machine matches exactly. Each invocation
logs one structured summary line and its figures as CloudWatch embedded metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from idminter_pipeline.aws_lambda import dispatch
from idminter_pipeline.aws_lambda import find_work as find_work_step
from idminter_pipeline.aws_lambda.outcomes import as_reported, configure_logging
from idminter_pipeline.core.gc_settings import batch_run_collector


def _entry(step: Callable[[object], dict[str, Any]], event: object) -> dict[str, Any]:
    configure_logging()
    try:
        with batch_run_collector():  # the Lambda is an entry point: collector settings for a run
            return step(event)
    except Exception as error:
        # Step Functions matches the reported class name exactly: see `outcomes`.
        reported = as_reported(error)
        if reported is error:
            raise
        raise reported from error


def handler(event: object, context: object = None) -> dict[str, Any]:
    """The minter: every event shape above."""
    return _entry(dispatch.dispatch, event)


def find_work(event: object, context: object = None) -> dict[str, Any]:
    """The `mint-window` state machine's find-work step (`aws_lambda.find_work`), same image."""
    return _entry(find_work_step.find_work, event)
