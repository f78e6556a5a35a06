"""Tell the next pipeline step which works were identified: one SNS message per written work.

The message format is the reference port's (and the Scala minter's before it), which the matcher
reads through SNS and SQS: `{"default": "<canonicalId>"}` with `MessageStructure=json`, so every
subscriber receives the bare canonical ID. Messages go out with `PublishBatch`, 10 entries a call
(SNS's limit), the calls of one pipeline batch in parallel.

Two kinds of failure, two outcomes:

- SNS refuses single entries (the response's `Failed` list). Those that are not the sender's
  fault are retried with backoff (tenacity); entries still failing after the last attempt, and
  sender faults at once, are returned naming their works, which the pipeline fails at stage
  `notify`. The works stay written: re-running their scope notifies again.
- A whole call fails (topic missing, access denied, endpoint unreachable). Transient errors
  (throttling, 5xx, lost connections) are retried too; what still fails raises
  `DownstreamNotificationError`, because it concerns every work of the run.

Works that share a canonical ID (a successor and the predecessor it inherited from write one
identified document) are announced once per `notify` call: once per batch, or once per run when
the pipeline announces at the run's end (`WorksPipeline(announce_once=True)`, the Lambda's queued
batches).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.wait import wait_base

from idminter_pipeline.core.errors import DownstreamNotificationError, InvalidInputError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import env_text

logger = logging.getLogger(__name__)

TOPIC_ARN_ENV = "IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN"
# PublishBatch accepts at most 10 entries.
SNS_BATCH_SIZE = 10
DEFAULT_MAX_ATTEMPTS = 5
# A pipeline batch of 500 works is 50 calls: enough threads that they overlap, few enough that a
# Lambda or an ECS task does not open hundreds of connections.
DEFAULT_MAX_WORKERS = 16
DEFAULT_WAIT = wait_exponential(multiplier=0.2, max=10)
# Whole-call errors worth another attempt; anything else (NotFound, AuthorizationError,
# InvalidParameter) will not get better by waiting.
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottling",
    }
)
_TOPIC_ARN = re.compile(
    r"arn:aws[a-z-]*:sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):\d{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?"
)


@dataclass(frozen=True)
class NotifyFailure:
    """A written work whose canonical ID the topic did not accept."""

    work_id: str
    canonical_id: str
    detail: str


class Announceable(Protocol):
    """A written work, as far as announcing it goes (an `IdentifiedWork`, or `Announced`)."""

    @property
    def canonical_id(self) -> str: ...

    @property
    def source_id(self) -> str: ...


class Announced(NamedTuple):
    """A written work to announce, without its document (kept until the end of a run)."""

    canonical_id: str
    source_id: str


class DownstreamNotifier(Protocol):
    """What the pipeline needs of a notifier: announce written works, say which were not."""

    def describe(self) -> str: ...

    def notify(self, works: Sequence[Announceable]) -> list[NotifyFailure]: ...


def message_entry(canonical_id: str) -> dict[str, str]:
    """One `PublishBatch` entry in the reference port's format. Canonical IDs are 8 alphanumeric
    characters, valid entry ids, and unique once a batch is deduplicated."""
    return {
        "Id": canonical_id,
        "Message": json.dumps({"default": canonical_id}),
        "MessageStructure": "json",
    }


def topic_region(topic_arn: object) -> str:
    """The region of an SNS topic ARN (calls must go there), or `InvalidInputError` naming it."""
    match = _TOPIC_ARN.fullmatch(topic_arn) if isinstance(topic_arn, str) else None
    if match is None:
        raise InvalidInputError(
            f"{TOPIC_ARN_ENV} is not an SNS topic ARN "
            f"(arn:aws:sns:REGION:ACCOUNT:NAME): {excerpt(topic_arn)}"
        )
    if topic_arn.endswith(".fifo"):  # type: ignore[union-attr]
        raise InvalidInputError(
            f"{TOPIC_ARN_ENV} names a FIFO topic, which needs message groups the matcher does "
            f"not use: {excerpt(topic_arn)}"
        )
    return match["region"]


def _boto_errors() -> tuple[type[Exception], type[Exception]]:
    """botocore's ClientError and BotoCoreError. Imported here, not at the top: boto3 and botocore
    take 0.1-0.4 s to import, which every command paid even with no topic configured."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    return ClientError, BotoCoreError


class _EntriesFailed(Exception):
    """Some entries of a call failed and may succeed if sent again."""


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, _EntriesFailed):
        return True
    client_error, botocore_error = _boto_errors()
    if isinstance(error, client_error):
        return error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES  # type: ignore[attr-defined]
    return isinstance(error, botocore_error)


def _describe_call_error(error: Exception) -> str:
    if isinstance(error, _boto_errors()[0]):
        details = error.response.get("Error", {})  # type: ignore[attr-defined]
        return f"{details.get('Code')}: {details.get('Message')}"
    return f"{type(error).__name__}: {error}"


class SnsNotifier:
    """Publishes written works' canonical IDs to one SNS topic."""

    def __init__(
        self,
        topic_arn: str,
        *,
        client: Any | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_workers: int = DEFAULT_MAX_WORKERS,
        wait: wait_base = DEFAULT_WAIT,
    ) -> None:
        region = topic_region(topic_arn)
        if max_attempts < 1 or max_workers < 1:
            raise InvalidInputError(
                f"max_attempts and max_workers must be at least 1, got {max_attempts} and "
                f"{max_workers}"
            )
        self.topic_arn = topic_arn
        self.max_attempts = max_attempts
        self.max_workers = max_workers
        self.wait = wait
        if client is None:
            # Only a run with a topic configured pays for importing boto3.
            import boto3  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415

            client = boto3.client(
                "sns",
                region_name=region,
                config=Config(max_pool_connections=max_workers, retries={"mode": "standard"}),
            )
        self._client = client

    def describe(self) -> str:
        return f"SNS topic {self.topic_arn}"

    def notify(self, works: Sequence[Announceable]) -> list[NotifyFailure]:
        by_canonical_id: dict[str, list[str]] = {}
        for work in works:
            by_canonical_id.setdefault(work.canonical_id, []).append(work.source_id)
        canonical_ids = list(by_canonical_id)
        chunks = [
            canonical_ids[start : start + SNS_BATCH_SIZE]
            for start in range(0, len(canonical_ids), SNS_BATCH_SIZE)
        ]
        refused: dict[str, str] = {}
        if len(chunks) == 1:
            refused.update(self._publish(chunks[0]))
        elif chunks:
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(chunks))) as pool:
                # Every chunk is tried; the first whole-call failure is raised after the rest.
                for result in pool.map(self._publish, chunks):
                    refused.update(result)
        return [
            NotifyFailure(work_id, canonical_id, detail)
            for canonical_id, detail in refused.items()
            for work_id in by_canonical_id[canonical_id]
        ]

    def _publish(self, canonical_ids: Sequence[str]) -> dict[str, str]:
        """Publish up to 10 IDs; the ones that were not accepted, with why."""
        pending = {canonical_id: "" for canonical_id in canonical_ids}
        refused: dict[str, str] = {}
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=_log_retry(self.topic_arn),
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._call(pending, refused)
        except RetryError as exhausted:
            error = exhausted.last_attempt.exception()
            if not isinstance(error, _EntriesFailed):
                raise DownstreamNotificationError(
                    self.topic_arn,
                    f"{_describe_call_error(error)} (after {self.max_attempts} attempts)",  # type: ignore[arg-type]
                ) from error
            for canonical_id, detail in pending.items():
                refused[canonical_id] = (
                    f"SNS did not accept canonical ID {canonical_id} after {self.max_attempts} "
                    f"attempts: {detail}"
                )
        except _boto_errors() as error:
            detail = _describe_call_error(error)
            raise DownstreamNotificationError(self.topic_arn, detail) from error
        return refused

    def _call(self, pending: dict[str, str], refused: dict[str, str]) -> None:
        response = self._client.publish_batch(
            TopicArn=self.topic_arn,
            PublishBatchRequestEntries=[message_entry(canonical_id) for canonical_id in pending],
        )
        for entry in response.get("Successful", []):
            pending.pop(entry["Id"], None)
        for entry in response.get("Failed", []):
            detail = f"{entry.get('Code')}: {excerpt(entry.get('Message'))}"
            if entry.get("SenderFault"):
                # The same request would be refused again.
                pending.pop(entry["Id"], None)
                refused[entry["Id"]] = f"SNS refused canonical ID {entry['Id']}: {detail}"
            elif entry["Id"] in pending:
                pending[entry["Id"]] = detail
        if pending:
            raise _EntriesFailed(f"{len(pending)} entries not accepted")


def _log_retry(topic_arn: str) -> Callable[[Any], None]:
    def log(state: Any) -> None:
        logger.warning(
            "publishing to %s: attempt %d failed (%s), retrying",
            topic_arn,
            state.attempt_number,
            state.outcome.exception(),
        )

    return log


def downstream_notifier_from_env(environ: Mapping[str, str] | None = None) -> SnsNotifier | None:
    """The notifier `IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN` names, or None when it is unset."""
    topic_arn = env_text(TOPIC_ARN_ENV, environ=environ)
    return SnsNotifier(topic_arn) if topic_arn else None
