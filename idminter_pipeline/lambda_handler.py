"""The Step Functions entry point (RFC 083, "Service rewrite"): same input and output shapes as
the Scala minter, plus window and full scopes.

Input, exactly one scope:

    {"sourceIdentifiers": ["sierra-system-number/b1161044x", ...], "jobId": "..."}
    {"window": {"startTime": "2026-07-30T16:00:00Z", "endTime": "2026-07-30T16:15:00Z"}}
    {"full": true}

(snake_case keys are accepted too). A full run with a `jobId` records a checkpoint after each
written batch: invoked again with the same `jobId` after a timeout or a crash, it resumes after
the last written batch instead of starting again. Output:

    {"processedIdentifiers": [...], "jobId": ..., "failures": [{"sourceIdentifier", "stage",
     "detail"}]}

Bad events raise `InvalidInputError` naming what is wrong; errors that concern no single work
(pool exhausted, registry or store unreachable) raise too, so Step Functions retries the batch.
"""

from __future__ import annotations

import logging
from typing import Any

from idminter_pipeline.errors import InvalidInputError
from idminter_pipeline.gc_settings import batch_run_collector
from idminter_pipeline.works.documents import WORK_ONTOLOGY_TYPE, json_type
from idminter_pipeline.works.runner import run_from_env
from idminter_pipeline.works.stores import FullScope, IdsScope, WindowScope, WorkScope

logger = logging.getLogger(__name__)

_IDS_KEYS = ("sourceIdentifiers", "source_identifiers")
_JOB_KEYS = ("jobId", "job_id")
_WINDOW_KEYS = {"start": ("startTime", "start_time"), "end": ("endTime", "end_time")}


def _one_of(mapping: dict[str, Any], keys: tuple[str, ...], what: str) -> Any:
    present = [k for k in keys if k in mapping]
    if len(present) > 1:
        raise InvalidInputError(f"{what}: give one of {' or '.join(present)}, not both")
    return mapping[present[0]] if present else None


def parse_event(event: object) -> tuple[WorkScope, str | None]:
    """The scope and job id of a Lambda event, or `InvalidInputError` saying what is wrong."""
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


def handler(event: object, context: object = None) -> dict[str, Any]:
    scope, job_id = parse_event(event)
    with batch_run_collector():  # the Lambda is an entry point: collector settings for a run
        summary = run_from_env(scope, job_id=job_id)  # full + jobId resumes (checkpoints)
    logger.info("minted %s", summary.as_dict() | {"failures": len(summary.failures)})
    return {
        "processedIdentifiers": [step_functions_id(w) for w in summary.processed],
        "jobId": job_id,
        "failures": [
            {**f.as_dict(), "sourceIdentifier": step_functions_id(f.work_id)}
            for f in summary.failures
        ],
    }
