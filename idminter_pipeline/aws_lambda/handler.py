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
share of the execution's payload quota (`lambda_outcomes.batch_summary`).

Bad events raise `InvalidInputError` naming what is wrong; errors that concern no single work
(pool exhausted, registry, store or downstream topic unreachable) raise too, so Step Functions
or the queue retries the whole batch. Every error leaves under one of the stable names of
`lambda_outcomes.REPORTED_ERROR_NAMES`, which the state machine matches exactly. Each invocation
logs one structured summary line and its figures as CloudWatch embedded metrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from idminter_pipeline.aws_lambda.outcomes import (
    as_reported,
    batch_summary,
    configure_logging,
    emit_metrics,
    log_run,
)
from idminter_pipeline.core import strict_json
from idminter_pipeline.core.errors import InvalidInputError, InvalidSourceIdentifierError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.gc_settings import batch_run_collector
from idminter_pipeline.core.job_ids import check_job_id
from idminter_pipeline.works.documents import WORK_ONTOLOGY_TYPE, json_type, work_document_id
from idminter_pipeline.works.pipeline import MAX_BATCH_SIZE, RunSummary
from idminter_pipeline.works.runner import run_from_env
from idminter_pipeline.works.stores import FullScope, IdsScope, WindowScope, WorkScope

logger = logging.getLogger(__name__)

_IDS_KEYS = ("sourceIdentifiers", "source_identifiers")
_JOB_KEYS = ("jobId", "job_id")
_WINDOW_KEYS = {"start": ("startTime", "start_time"), "end": ("endTime", "end_time")}
# The Lambda reads the Elasticsearch API key from this secret at each invocation, so the key
# never sits in the function's configuration and rotating it needs no redeploy.
ES_API_KEY_SECRET_ENV = "ES_API_KEY_SECRET_NAME"


def _one_of(mapping: dict[str, Any], keys: tuple[str, ...], what: str) -> Any:
    present = [k for k in keys if k in mapping]
    if len(present) > 1:
        raise InvalidInputError(f"{what}: give one of {' or '.join(present)}, not both")
    return mapping[present[0]] if present else None


def parse_event(event: object) -> tuple[WorkScope, str | None]:
    """The scope and job id of a Step Functions request, or `InvalidInputError` saying what is
    wrong."""
    if not isinstance(event, dict):
        raise InvalidInputError(f"the event must be a JSON object, got {json_type(event)}")
    ids = _one_of(event, _IDS_KEYS, "source identifiers")
    window = event.get("window")
    full = event.get("full")
    given = [
        name
        for name, present in (
            ("sourceIdentifiers", ids is not None),
            ("window", window is not None),
            ("full", full is not None and full is not False),
        )
        if present
    ]
    if not given:
        raise InvalidInputError(
            "the event names no scope: give sourceIdentifiers, window {startTime, endTime}, "
            "or full: true"
        )
    if len(given) > 1:
        raise InvalidInputError(f"the event mixes scopes ({', '.join(given)}): give exactly one")
    job_id = _one_of(event, _JOB_KEYS, "job id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise InvalidInputError(f"jobId must be a non-empty string, got {job_id!r}")
    # Here, not at the first mint: a queued record whose job id the registry cannot store fails
    # alone (a refusal), instead of failing every record minted with it.
    check_job_id(job_id)

    scope: WorkScope
    if ids is not None:
        if not isinstance(ids, list):
            raise InvalidInputError(f"sourceIdentifiers must be an array, got {json_type(ids)}")
        if not ids:
            raise InvalidInputError("sourceIdentifiers is empty: give at least one identifier")
        scope = IdsScope(tuple(ids))
    elif window is not None:
        if not isinstance(window, dict):
            raise InvalidInputError(f"window must be an object, got {json_type(window)}")
        start = _one_of(window, _WINDOW_KEYS["start"], "window start")
        end = _one_of(window, _WINDOW_KEYS["end"], "window end")
        if start is None or end is None:
            raise InvalidInputError("window needs both startTime and endTime")
        scope = WindowScope(start, end)
    else:
        if full is not True:
            raise InvalidInputError(f"full must be true, got {full!r}")
        scope = FullScope()
    return scope, job_id


def step_functions_id(work_id: str) -> str:
    """`Work[sierra-system-number/b1]` -> `sierra-system-number/b1`, the Scala interface's form."""
    prefix = f"{WORK_ONTOLOGY_TYPE}["
    if work_id.startswith(prefix) and work_id.endswith("]"):
        return work_id[len(prefix) : -1]
    return work_id


# --- Queued records ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedRecord:
    """One message of a queued batch: the works it names, or why it cannot be read."""

    message_id: str
    work_ids: tuple[str, ...] = ()
    job_id: str | None = None
    refusal: str | None = None


def _message_id(item: object, position: int) -> str:
    # Without a message id a failure cannot be reported for the record alone: the batch is bad.
    message_id = item.get("messageId") if isinstance(item, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise InvalidInputError(
            f"record {position} of the batch has no messageId, so its failures could not be "
            f"reported: {excerpt(item)}"
        )
    return message_id


def work_id_from_body(body: object, message_id: str) -> str:
    """The `Work[...]` id an SQS body names: an SNS notification whose `Message` is the work's
    source identifier, or that identifier bare. `InvalidInputError` otherwise."""
    if not isinstance(body, str):
        raise InvalidInputError(f"message {message_id}: body must be a string, got {excerpt(body)}")
    if body.lstrip()[:1] in ("{", "[", '"'):
        envelope = strict_json.loads(body, what=f"message {message_id} body")
        message = envelope.get("Message") if isinstance(envelope, dict) else None
        if (
            not isinstance(envelope, dict)
            or envelope.get("Type") != "Notification"
            or not isinstance(message, str)
        ):
            raise InvalidInputError(
                f"message {message_id}: body is JSON but not an SNS notification with a "
                f"string Message: {excerpt(body)}"
            )
        identifier = message
    else:
        identifier = body
    try:
        return work_document_id(identifier)
    except InvalidInputError as error:
        raise InvalidInputError(f"message {message_id}: {_readable(error)}") from error


def _readable(error: InvalidInputError) -> str:
    # A queued body can be megabytes: name the offending value by an excerpt, never whole.
    if isinstance(error, InvalidSourceIdentifierError):
        return f"invalid source identifier {excerpt(error.value)}: {error.reason}"
    return str(error)


def _queued_record(item: dict[str, Any], message_id: str) -> QueuedRecord:
    try:
        if "body" in item:  # an SQS record, as SQS or a Pipe without input template sends it
            return QueuedRecord(message_id, (work_id_from_body(item["body"], message_id),))
        scope, job_id = parse_event(item)  # a request made by the Pipe's input template
        if not isinstance(scope, IdsScope):
            raise InvalidInputError(
                "a queued request must name sourceIdentifiers (windows and full runs belong to "
                "Step Functions, Dagster or `idminter mint`)"
            )
    except InvalidInputError as error:
        detail = _readable(error)
        if not detail.startswith(f"message {message_id}"):
            detail = f"message {message_id}: {detail}"
        return QueuedRecord(message_id, refusal=detail)
    return QueuedRecord(message_id, scope.ids, job_id)


def parse_queued_records(records: Sequence[object]) -> list[QueuedRecord]:
    """Each record of a queued batch, read; `InvalidInputError` only if the batch is unusable."""
    if not records:
        raise InvalidInputError("the batch holds no records")
    parsed = []
    seen: set[str] = set()
    for position, item in enumerate(records):
        message_id = _message_id(item, position)
        if message_id in seen:
            raise InvalidInputError(f"message id {excerpt(message_id)} appears twice in the batch")
        seen.add(message_id)
        parsed.append(_queued_record(item, message_id))  # type: ignore[arg-type]
    return parsed


def _mint_together(ids_by_job: Mapping[str | None, Iterable[str]]) -> list[RunSummary]:
    """One pipeline run per job id, each one batch (clamped to the pipeline's 5,000 maximum)."""
    summaries = []
    for job_id, ids in ids_by_job.items():
        scope = IdsScope(tuple(ids))
        summaries.append(
            run_from_env(
                scope,
                job_id=job_id,
                batch_size=min(len(scope.ids), MAX_BATCH_SIZE),
                environ=lambda_environment(),
                # One announcement per canonical ID for the invocation's run, not per 5,000.
                announce_once=True,
            )
        )
    return summaries


def _done_and_failures(summaries: Sequence[RunSummary]) -> tuple[set[str], dict[str, str]]:
    """Works written and announced, or superseded (a newer record of their chain holds the
    document: nothing to retry); the first failure of each work that was not."""
    failed: dict[str, str] = {}
    for summary in summaries:
        for failure in summary.failures:
            failed.setdefault(failure.work_id, f"{failure.stage}: {failure.detail}")
    done = {w for summary in summaries for w in summary.processed if w not in failed}
    done.update(s.work_id for summary in summaries for s in summary.superseded)
    return done, failed


def handle_queued(records: Sequence[object]) -> dict[str, list[dict[str, str]]]:
    """Mint the works of a queued batch together; SQS's partial batch response."""
    parsed = parse_queued_records(records)
    ids_by_job: dict[str | None, dict[str, None]] = {}
    for record in parsed:
        if record.refusal is None:
            ids_by_job.setdefault(record.job_id, {}).update(dict.fromkeys(record.work_ids))
    summaries = _mint_together(ids_by_job)
    done, failed = _done_and_failures(summaries)

    failures = []
    for record in parsed:
        if record.refusal is not None:
            logger.warning("record refused: %s", record.refusal)
            failures.append({"itemIdentifier": record.message_id})
            continue
        missing = [w for w in record.work_ids if w not in done]
        if missing:
            for work_id in missing:
                logger.warning(
                    "message %s: %s %s",
                    record.message_id,
                    work_id,
                    failed.get(work_id, "was neither written nor reported failed"),
                )
            failures.append({"itemIdentifier": record.message_id})
    log_run("queued batch", summaries, records=len(parsed), records_failed=len(failures))
    emit_metrics(summaries, batch_item_failures=len(failures))
    return {"batchItemFailures": failures}


def _handle_requests(requests: Sequence[object]) -> dict[str, Any]:
    """Step Functions requests sent together (a Pipe template without message ids)."""
    ids_by_job: dict[str | None, dict[str, None]] = {}
    for position, request in enumerate(requests):
        try:
            scope, job_id = parse_event(request)
        except InvalidInputError as error:
            raise InvalidInputError(f"request {position} of the batch: {error}") from error
        if not isinstance(scope, IdsScope):
            raise InvalidInputError(
                f"request {position} of the batch: requests sent together must name "
                "sourceIdentifiers"
            )
        ids_by_job.setdefault(job_id, {}).update(dict.fromkeys(scope.ids))
    summaries = _mint_together(ids_by_job)
    log_run("requests", summaries, requests=len(requests))
    emit_metrics(summaries)
    job_ids = list(ids_by_job)
    return _step_functions_result(summaries, job_ids[0] if len(job_ids) == 1 else None)


def _step_functions_result(summaries: Sequence[RunSummary], job_id: str | None) -> dict[str, Any]:
    done, _ = _done_and_failures(summaries)
    return {
        "processedIdentifiers": [
            step_functions_id(w) for s in summaries for w in s.processed if w in done
        ],
        "jobId": job_id,
        "failures": [
            {**f.as_dict(), "sourceIdentifier": step_functions_id(f.work_id)}
            for s in summaries
            for f in s.failures
        ],
    }


def lambda_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment, plus `ES_API_KEY` read from the secret `ES_API_KEY_SECRET_NAME` names
    (the secret's string is the encoded API key)."""
    env = dict(os.environ if environ is None else environ)
    secret_name = env.get(ES_API_KEY_SECRET_ENV)
    if secret_name:
        client = boto3.client("secretsmanager", region_name=env.get("AWS_REGION") or None)
        env["ES_API_KEY"] = client.get_secret_value(SecretId=secret_name)["SecretString"]
    return env


def _is_queued(item: object) -> bool:
    return isinstance(item, dict) and ("messageId" in item or "body" in item)


def handler(event: object, context: object = None) -> dict[str, Any]:
    configure_logging()
    try:
        with batch_run_collector():  # the Lambda is an entry point: collector settings for a run
            return _dispatch(event)
    except Exception as error:
        # Step Functions matches the reported class name exactly: see `lambda_outcomes`.
        reported = as_reported(error)
        if reported is error:
            raise
        raise reported from error


def _batch_position(event: object) -> tuple[int, int] | None:
    """`batch: {"index", "count"}`, which the state machine adds to each batch's request: the
    answer is then the batch's summary, sized to fit the execution's payload quota."""
    batch = event.get("batch") if isinstance(event, dict) else None
    if batch is None:
        return None
    index = batch.get("index") if isinstance(batch, dict) else None
    count = batch.get("count") if isinstance(batch, dict) else None
    integers = all(isinstance(n, int) and not isinstance(n, bool) for n in (index, count))
    if not (integers and 0 <= index < count):  # type: ignore[operator]
        raise InvalidInputError(
            f"batch must be {{index, count}} with 0 <= index < count, got {excerpt(batch)}"
        )
    return index, count


def _dispatch(event: object) -> dict[str, Any]:
    if isinstance(event, list):
        if not event:
            raise InvalidInputError("the batch holds no records")
        if any(_is_queued(item) for item in event):
            return handle_queued(event)
        return _handle_requests(event)
    if isinstance(event, dict) and "Records" in event:
        records = event["Records"]
        if not isinstance(records, list):
            raise InvalidInputError(f"Records must be an array, got {json_type(records)}")
        return handle_queued(records)

    scope, job_id = parse_event(event)
    position = _batch_position(event)
    # A full scope with a jobId resumes after its last written batch (checkpoints).
    summary = run_from_env(scope, job_id=job_id, environ=lambda_environment())
    log_run("request", [summary], **({"batch": position[0]} if position else {}))
    emit_metrics([summary])
    if position is not None:
        index, count = position
        return {
            "jobId": job_id,
            "summary": batch_summary([summary], index, count, step_functions_id),
        }
    return _step_functions_result([summary], job_id)
