"""The S3 objects of a Step Functions run: the find-work batches the minting invocations read,
and the per-run report each writes, both in the reference port's shapes so its state machine,
its find-work step and its readers work unchanged.

- A batch is a minting request stored as JSON (`{"source_identifiers": [...], "window": null,
  "job_id": "..."}`), handed to the Map as a partition ref `{"s3_uri", "count"}`.
- A report is `{"window", "pipeline_date", "job_id", "successful_ids", "errors"}`: the canonical
  IDs of the works written and the first 1,000 failures (`row_id`, `stage`, `detail` cut to 500
  characters), at `s3://S3_BUCKET/pipeline-PIPELINE_DATE/PIPELINE_STEP/S3_PREFIX/<job id>.json`.

A batch that is missing, forbidden or malformed is `InvalidInputError` naming the object (retrying
gives the same answer); a read or write that failed on throttling, a server error or the network
is `ObjectStorageError`, which the state machine retries.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from idminter_pipeline.aws_lambda.outcomes import InvocationOutcome
from idminter_pipeline.core.errors import InvalidInputError, ObjectStorageError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import RunReportSettings

# The port keeps the first 1,000 failures, each detail cut to 500 characters.
REPORTED_FAILURES = 1_000
DETAIL_LENGTH = 500
# Error codes after which reading the object again cannot succeed.
_PERMANENT = frozenset(
    {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "AccessDenied", "403", "InvalidObjectState"}
)


def split_s3_uri(uri: object, *, what: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key), or `InvalidInputError` naming the value."""
    parts = urlsplit(uri) if isinstance(uri, str) else None
    if parts is None or parts.scheme != "s3" or not parts.netloc or len(parts.path) < 2:
        raise InvalidInputError(f"{what} must be an s3://bucket/key URI, got {excerpt(uri)}")
    return parts.netloc, parts.path[1:]


def _storage_error(error: Exception, action: str, uri: str) -> Exception:
    code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
    detail = f"{action} {uri}: {type(error).__name__}: {excerpt(str(error), 300)}"
    if code in _PERMANENT:
        return InvalidInputError(detail)
    return ObjectStorageError(detail)


def read_object(uri: str, *, what: str, client: Any = None) -> bytes:
    """The bytes of the S3 object `uri` names."""
    bucket, key = split_s3_uri(uri, what=what)
    s3 = client or boto3.client("s3")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as error:
        raise _storage_error(error, f"cannot read {what}", uri) from error


def write_json(uri: str, value: object, *, what: str, client: Any = None) -> None:
    bucket, key = split_s3_uri(uri, what=what)
    s3 = client or boto3.client("s3")
    body = json.dumps(value, separators=(",", ":")).encode("utf-8")
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except (ClientError, BotoCoreError) as error:
        raise _storage_error(error, f"cannot write {what}", uri) from error


def window_json(start: datetime, end: datetime) -> dict[str, str]:
    """A window as the port's model dumps it: snake_case, ISO 8601, UTC as `Z`."""
    return {
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": end.isoformat().replace("+00:00", "Z"),
    }


def run_report(
    outcome: InvocationOutcome,
    *,
    job_id: str,
    window: dict[str, str] | None,
    settings: RunReportSettings,
) -> dict[str, Any]:
    failures = [f for s in outcome.summaries for f in s.failures][:REPORTED_FAILURES]
    return {
        "window": window,
        "pipeline_date": settings.pipeline_date,
        "job_id": job_id,
        "successful_ids": outcome.successful_canonical_ids(),
        "errors": [
            {"row_id": f.work_id, "stage": str(f.stage), "detail": f.detail[:DETAIL_LENGTH]}
            for f in failures
        ],
    }


def publish_report(
    outcome: InvocationOutcome,
    *,
    job_id: str,
    window: dict[str, str] | None,
    settings: RunReportSettings,
) -> str | None:
    """Write the run's report where the port writes it; its URI, or None without `S3_BUCKET`."""
    if settings.bucket is None:
        return None
    uri = f"s3://{settings.bucket}/{settings.report_key(job_id)}"
    report = run_report(outcome, job_id=job_id, window=window, settings=settings)
    write_json(uri, report, what="the run report")
    return uri
