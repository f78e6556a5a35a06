"""Route each kind of event the minter Lambda accepts to the works pipeline, and answer in the
shape its caller reads (`events` reads the event, `outcomes` sums and reports what happened)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import boto3

from idminter_pipeline.aws_lambda.events import (
    MintingRequest,
    PartitionRef,
    batch_position,
    minting_request,
    parse_queued_records,
    parse_requests,
    partition_ref,
    partition_request,
    queued_records,
    step_functions_id,
)
from idminter_pipeline.aws_lambda.outcomes import InvocationOutcome, batch_summary
from idminter_pipeline.aws_lambda.reports import publish_report, read_object, window_json
from idminter_pipeline.core.limits import MAX_BATCH_SIZE
from idminter_pipeline.core.release import release_tag
from idminter_pipeline.core.settings import (
    ConnectionBudget,
    RunReportSettings,
    env_text,
    environment,
)
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.runner import run_from_env
from idminter_pipeline.works.stores import IdsScope, WindowScope

logger = logging.getLogger("idminter_pipeline.aws_lambda.handler")

# The Lambda reads the Elasticsearch API key from this secret at each invocation, so the key
# never sits in the function's configuration and rotating it needs no redeploy.
ES_API_KEY_SECRET_ENV = "ES_API_KEY_SECRET_NAME"


def lambda_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment, plus `ES_API_KEY` read from the secret `ES_API_KEY_SECRET_NAME` names
    (the secret's string is the encoded API key)."""
    env = dict(environment(environ))
    secret_name = env_text(ES_API_KEY_SECRET_ENV, environ=env)
    if secret_name:
        client = boto3.client("secretsmanager", region_name=env_text("AWS_REGION", environ=env))
        env["ES_API_KEY"] = client.get_secret_value(SecretId=secret_name)["SecretString"]
    return env


def dispatch(event: object) -> dict[str, Any]:
    """Mint what `event` asks for; the answer its caller reads."""
    # Refused before anything is minted when the paths together may exceed the registry's
    # connections (RDS_MAX_CONNECTIONS).
    ConnectionBudget.from_env()
    release_tag()  # a malformed IDMINTER_RELEASE is refused here, not after the batch is minted
    records = queued_records(event)
    if records is not None:
        return handle_queued(records)
    if isinstance(event, list):
        return handle_requests(event)
    ref = partition_ref(event)
    if ref is not None:
        return handle_partition(ref)
    return handle_request(event)


def _mint_together(ids_by_job: Mapping[str | None, Iterable[str]]) -> InvocationOutcome:
    """One pipeline run per job id, each one batch (clamped to the pipeline's 5,000 maximum)."""
    summaries: list[RunSummary] = []
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
                # Over 5,000 works: the same outcome whatever the order of the records.
                plan_ids_scope=True,
            )
        )
    return InvocationOutcome.of(summaries)


def handle_queued(records: Sequence[object]) -> dict[str, list[dict[str, str]]]:
    """Mint the works of a queued batch together; SQS's partial batch response."""
    parsed = parse_queued_records(records)
    ids_by_job: dict[str | None, dict[str, None]] = {}
    for record in parsed:
        if record.refusal is None:
            ids_by_job.setdefault(record.job_id, {}).update(dict.fromkeys(record.work_ids))
    outcome = _mint_together(ids_by_job)

    failures = []
    for record in parsed:
        if record.refusal is not None:
            logger.warning("record refused: %s", record.refusal)
            failures.append({"itemIdentifier": record.message_id})
            continue
        missing = [w for w in record.work_ids if w not in outcome.done]
        if missing:
            for work_id in missing:
                logger.warning(
                    "message %s: %s %s",
                    record.message_id,
                    work_id,
                    outcome.failed.get(work_id, "was neither written nor reported failed"),
                )
            failures.append({"itemIdentifier": record.message_id})
    outcome.report(
        "queued batch",
        batch_item_failures=len(failures),
        records=len(parsed),
        records_failed=len(failures),
    )
    return {"batchItemFailures": failures}


def handle_requests(requests: Sequence[object]) -> dict[str, Any]:
    """Step Functions requests sent together (a Pipe template without message ids)."""
    ids_by_job: dict[str | None, dict[str, None]] = {}
    for scope, job_id in parse_requests(requests):
        ids_by_job.setdefault(job_id, {}).update(dict.fromkeys(scope.ids))
    outcome = _mint_together(ids_by_job)
    outcome.report("requests", requests=len(requests))
    job_ids = list(ids_by_job)
    return _step_functions_result(outcome, job_ids[0] if len(job_ids) == 1 else None)


def handle_request(event: object) -> dict[str, Any]:
    """One Step Functions request; with `batch`, one batch of the state machine's Map. Answered
    in this project's shape and the port's (`IdMinterResult`) together."""
    request = minting_request(event)
    position = batch_position(event)
    reports = RunReportSettings.from_env()  # a bad setting is refused before anything is minted
    outcome = _mint_request(request, "request", **({"batch": position[0]} if position else {}))
    if position is not None:
        index, count = position
        summary = batch_summary(outcome, index, count, step_functions_id)
        return {"jobId": request.job_id, "summary": summary}
    port = _port_result(outcome, request, reports)
    return _step_functions_result(outcome, request.job_id) | port


def handle_partition(ref: PartitionRef) -> dict[str, Any]:
    """A partition ref from a find-work step: the request stored in S3, minted; the port's
    answer, which stays small whatever the partition holds."""
    reports = RunReportSettings.from_env()
    request = partition_request(read_object(ref.s3_uri, what=f"partition {ref.s3_uri}"), ref)
    outcome = _mint_request(request, "partition")
    return _port_result(outcome, request, reports)


def _mint_request(request: MintingRequest, kind: str, **counts: int) -> InvocationOutcome:
    # Checkpointed only under a job id the caller chose: a full scope with a jobId resumes after
    # its last written batch when invoked again with it.
    summary = run_from_env(
        request.scope,
        job_id=request.job_id,
        environ=lambda_environment(),
        resumable=request.job_id_given,
    )
    outcome = InvocationOutcome.of([summary])
    outcome.report(kind, **counts)
    return outcome


def _port_result(
    outcome: InvocationOutcome, request: MintingRequest, reports: RunReportSettings
) -> dict[str, Any]:
    """The port's `IdMinterResult`: the request's job id and window, the counts, the report."""
    scope = request.scope
    window = window_json(scope.start, scope.end) if isinstance(scope, WindowScope) else None
    report_uri = publish_report(outcome, job_id=request.job_id, window=window, settings=reports)
    return {
        "job_id": request.job_id,
        "window": window,
        "success_count": len(outcome.processed()),
        "failure_count": outcome.totals.works_failed,
        "report_s3_uri": report_uri,
    }


def _step_functions_result(outcome: InvocationOutcome, job_id: str | None) -> dict[str, Any]:
    return {
        "processedIdentifiers": [step_functions_id(w) for w in outcome.processed()],
        "jobId": job_id,
        "failures": outcome.failures(step_functions_id),
    }
