"""The events the minter Lambda accepts, read into what to mint: a scope and a job id for a Step
Functions request (this project's shapes and the reference port's `StepFunctionMintingRequest`,
which are the same but for the port's defaults), a partition ref naming a request stored in S3,
the works of each record for a queued batch. Nothing here mints; a bad event is
`InvalidInputError` naming what is wrong (a queued record's problem is kept as its refusal, so it
fails alone).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from idminter_pipeline.core import strict_json
from idminter_pipeline.core.errors import InvalidInputError, InvalidSourceIdentifierError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.job_ids import check_job_id
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.core.strict_json import json_type
from idminter_pipeline.works.stores import FullScope, IdsScope, WindowScope, WorkScope
from idminter_pipeline.works.stores.base import parse_timestamp

_IDS_KEYS = ("sourceIdentifiers", "source_identifiers")
_JOB_KEYS = ("jobId", "job_id")
_WINDOW_KEYS = {"start": ("startTime", "start_time"), "end": ("endTime", "end_time")}
# A window given only its end starts this long before it (the port's default).
DEFAULT_WINDOW = timedelta(minutes=15)


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
        scope = _window_scope(window)
    else:
        if full is not True:
            raise InvalidInputError(f"full must be true, got {full!r}")
        scope = FullScope()
    return scope, job_id


@dataclass(frozen=True)
class MintingRequest:
    """A Step Functions request: its scope, and its job id (the caller's, or generated)."""

    scope: WorkScope
    job_id: str
    job_id_given: bool


def generated_job_id() -> str:
    """The port's form (the minute, `20260730T1600`) and a random part, so two runs started in
    one minute never share a job id (nor resume each other's full run)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M}-{secrets.token_hex(4)}"


# A scheduled find-work run's window ends this long before its scheduled time, so documents
# written just before have been indexed (the port's lag).
SCHEDULE_INDEXING_LAG = timedelta(minutes=5)


def find_work_request(event: object) -> MintingRequest:
    """A find-work step's input: a minting request (`ids` accepted for `sourceIdentifiers`), or
    the port's scheduled form `{"scheduled_time": ...}`: the window of 15 minutes ending
    `SCHEDULE_INDEXING_LAG` before it."""
    if isinstance(event, dict) and "scheduled_time" in event:
        scope_keys = {"window", "full", "ids", *_IDS_KEYS}
        if scope_keys & event.keys():
            raise InvalidInputError("scheduled_time names the window: give no other scope")
        end = parse_timestamp(event["scheduled_time"], what="scheduled_time")
        rest = {k: v for k, v in event.items() if k != "scheduled_time"}
        event = {**rest, "window": {"endTime": end - SCHEDULE_INDEXING_LAG}}
    elif isinstance(event, dict) and "ids" in event:
        if any(key in event for key in _IDS_KEYS):
            raise InvalidInputError("source identifiers: give one of ids or sourceIdentifiers")
        event = {("sourceIdentifiers" if k == "ids" else k): v for k, v in event.items()}
    return minting_request(event)


def minting_request(event: object) -> MintingRequest:
    """`parse_event`, with a job id generated when the request has none."""
    scope, job_id = parse_event(event)
    if job_id is None:
        return MintingRequest(scope, generated_job_id(), job_id_given=False)
    return MintingRequest(scope, job_id, job_id_given=True)


@dataclass(frozen=True)
class PartitionRef:
    """The port's find-work output for one batch: the request stored at `s3_uri`, of `count`
    works."""

    s3_uri: str
    count: int


def partition_ref(event: object) -> PartitionRef | None:
    """The partition ref `event` is (`{"s3_uri": ..., "count": ...}`), or None if it is none."""
    if not isinstance(event, dict) or "s3_uri" not in event:
        return None
    uri, count = event["s3_uri"], event.get("count")
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidInputError(f"s3_uri must be an s3://bucket/key URI, got {excerpt(uri)}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise InvalidInputError(
            f"partition {uri}: count must be a whole number >= 0, got {count!r}"
        )
    return PartitionRef(uri, count if count is not None else -1)


def partition_request(text: bytes, ref: PartitionRef) -> MintingRequest:
    """The request a partition's S3 object holds; `InvalidInputError` naming the object when it
    is not JSON, not a request, or not the `count` works its ref says."""
    what = f"partition {ref.s3_uri}"
    document = strict_json.loads(text, what=what)
    try:
        request = minting_request(document)
    except InvalidInputError as error:
        raise InvalidInputError(f"{what}: {error}") from error
    if isinstance(request.scope, IdsScope) and ref.count >= 0:
        listed = _one_of(document, _IDS_KEYS, "source identifiers")
        if len(listed) != ref.count:
            raise InvalidInputError(
                f"{what}: its ref says {ref.count} works but it lists {len(listed)}"
            )
    return request


def _window_scope(window: object) -> WindowScope:
    if not isinstance(window, dict):
        raise InvalidInputError(f"window must be an object, got {json_type(window)}")
    start = _one_of(window, _WINDOW_KEYS["start"], "window start")
    end = _one_of(window, _WINDOW_KEYS["end"], "window end")
    if end is None:
        raise InvalidInputError("window needs endTime (startTime defaults to 15 minutes before)")
    if start is None:
        start = parse_timestamp(end, what="window end") - DEFAULT_WINDOW
    return WindowScope(start, end)


def batch_position(event: object) -> tuple[int, int] | None:
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


def step_functions_id(work_id: str) -> str:
    """`Work[sierra-system-number/b1]` -> `sierra-system-number/b1`, the Scala interface's form."""
    source = SourceIdentifier.parse(work_id)
    return f"{source.source_system}/{source.source_id}"


# --- Queued records ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedRecord:
    """One message of a queued batch: the works it names, or why it cannot be read."""

    message_id: str
    work_ids: tuple[str, ...] = ()
    job_id: str | None = None
    refusal: str | None = None


def is_queued(item: object) -> bool:
    """An SQS record, or a request a Pipe's input template made from one."""
    return isinstance(item, dict) and ("messageId" in item or "body" in item)


def queued_records(event: object) -> Sequence[object] | None:
    """The records of a queued batch (an SQS event source mapping event, or a Pipe's array of
    SQS records or template requests); None for any other event."""
    if isinstance(event, list):
        if not event:
            raise InvalidInputError("the batch holds no records")
        return event if any(is_queued(item) for item in event) else None
    if isinstance(event, dict) and "Records" in event:
        records = event["Records"]
        if not isinstance(records, list):
            raise InvalidInputError(f"Records must be an array, got {json_type(records)}")
        return records
    return None


def _message_id(item: object, position: int) -> str:
    # Without a message id a failure cannot be reported for the record alone: the batch is bad.
    message_id = item.get("messageId") if isinstance(item, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise InvalidInputError(
            f"record {position} of the batch has no messageId, so its failures could not be "
            f"reported: {excerpt(item)}"
        )
    return message_id


def identifier_from_body(body: object, message_id: str) -> str:
    """The source identifier an SQS body names: an SNS notification whose `Message` is the
    work's source identifier, or that identifier bare. `InvalidInputError` otherwise."""
    if not isinstance(body, str):
        raise InvalidInputError(f"message {message_id}: body must be a string, got {excerpt(body)}")
    if body.lstrip()[:1] not in ("{", "[", '"'):
        return body
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
    return message


def _readable(error: InvalidInputError) -> str:
    # A queued body can be megabytes: name the offending value by an excerpt, never whole.
    if isinstance(error, InvalidSourceIdentifierError):
        return f"invalid source identifier {excerpt(error.value)}: {error.reason}"
    return str(error)


def _queued_record(item: dict[str, Any], message_id: str) -> QueuedRecord:
    try:
        if "body" in item:  # an SQS record, as SQS or a Pipe without input template sends it
            scope: WorkScope = IdsScope((identifier_from_body(item["body"], message_id),))
            job_id = None
        else:  # a request made by the Pipe's input template
            scope, job_id = parse_event(item)
            if not isinstance(scope, IdsScope):
                raise InvalidInputError(
                    "a queued request must name sourceIdentifiers (windows and full runs belong "
                    "to Step Functions, Dagster or `idminter mint`)"
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


def parse_requests(requests: Sequence[object]) -> list[tuple[IdsScope, str | None]]:
    """Step Functions requests sent together (a Pipe template without message ids): each must
    name sourceIdentifiers; `InvalidInputError` names the first that does not."""
    parsed = []
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
        parsed.append((scope, job_id))
    return parsed
