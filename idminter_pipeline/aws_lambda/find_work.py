"""The find-work step of the `mint-window` state machine: split a window, a full run or a long id
list into batches of at most `IDMINTER_FIND_WORK_BATCH_SIZE` works, each written to S3 as the
request one minting invocation reads (a partition ref `{"s3_uri", "count"}`, the reference
port's shape), and the refs themselves into one manifest that the state machine's Distributed
Map reads (ItemReader). The answer is small whatever the scope holds:

    {"jobId", "window", "workCount", "batchCount", "maxConcurrency",
     "manifest": {"Bucket", "Key"}, "lock": {"key", "now", "expiresAt"}}

The ids are streamed from the store and each batch written as soon as it is full, so memory stays
flat. `maxConcurrency` is what the registry's connection budget allows the Map
(`core.settings.ConnectionBudget`); `lock` is what the state machine records in its lock table
so that no two executions run over one window at once.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from itertools import count, islice
from typing import Any

from idminter_pipeline.aws_lambda.dispatch import lambda_environment
from idminter_pipeline.aws_lambda.events import find_work_request
from idminter_pipeline.aws_lambda.reports import window_json, write_json
from idminter_pipeline.core.settings import ConnectionBudget, FindWorkSettings
from idminter_pipeline.works.stores import IdsScope, WindowScope, WorkScope, works_store_from_env
from idminter_pipeline.works.stores.base import format_timestamp

logger = logging.getLogger("idminter_pipeline.aws_lambda.handler")


def scope_segment(scope: WorkScope) -> str:
    """The scope's part of an S3 key and its lock key, as the port names it: `windows/<start>-
    <end>` (to the minute), `by_id/<digest>` or `full`."""
    if isinstance(scope, WindowScope):
        return f"windows/{scope.start:%Y%m%dT%H%M}-{scope.end:%Y%m%dT%H%M}"
    if isinstance(scope, IdsScope):
        digest = hashlib.sha256("\n".join(scope.ids).encode("utf-8")).hexdigest()[:16]
        return f"by_id/{digest}"
    return "full"


def find_work(event: object) -> dict[str, Any]:
    request = find_work_request(event)
    settings = FindWorkSettings.from_env()
    budget = ConnectionBudget.from_env()
    segment = scope_segment(request.scope)
    prefix = f"{settings.prefix}/{segment}/{request.job_id}"
    refs: list[dict[str, Any]] = []
    with works_store_from_env(lambda_environment()) as store:
        found = store.scan_ids(request.scope)
        for index in count():
            ids = list(islice(found, settings.batch_size))
            if not ids:
                break
            uri = f"s3://{settings.bucket}/{prefix}/partition-{index}.json"
            batch = {
                "source_identifiers": ids,
                "window": None,
                "job_id": f"{request.job_id}-p{index:03d}",
            }
            write_json(uri, batch, what=f"batch {uri}")
            refs.append({"s3_uri": uri, "count": len(ids)})
    manifest_key = f"{prefix}/partitions.json"
    write_json(f"s3://{settings.bucket}/{manifest_key}", refs, what="the batch manifest")
    scope = request.scope
    now = datetime.now(UTC)
    answer = {
        "jobId": request.job_id,
        "window": window_json(scope.start, scope.end) if isinstance(scope, WindowScope) else None,
        "workCount": sum(ref["count"] for ref in refs),
        "batchCount": len(refs),
        "maxConcurrency": budget.lambda_concurrency,
        "manifest": {"Bucket": settings.bucket, "Key": manifest_key},
        "lock": {
            "key": segment,
            "now": format_timestamp(now),
            "expiresAt": format_timestamp(now + timedelta(seconds=settings.lock_seconds)),
        },
    }
    logger.info(
        "found %d works in %s: %d batches of at most %d",
        answer["workCount"],
        segment,
        answer["batchCount"],
        settings.batch_size,
        extra={"find_work": {k: answer[k] for k in ("jobId", "workCount", "batchCount")}},
    )
    return answer
