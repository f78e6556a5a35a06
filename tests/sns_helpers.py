"""An SNS topic on the moto server with an SQS subscriber, as the matcher's queue would be."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3

from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.minting import Minter


@dataclass
class SubscribedTopic:
    topic_arn: str
    queue_url: str

    def envelopes(self) -> list[dict[str, Any]]:
        """Every SNS envelope the subscriber got since the last call (raw delivery off)."""
        sqs = boto3.client("sqs")
        envelopes: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return envelopes
            for message in batch:
                envelope = json.loads(message["Body"])
                assert envelope["Type"] == "Notification"
                envelopes.append(envelope)
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def received(self) -> list[str]:
        """Every message the subscriber got since the last call, as SNS delivered its body's
        `Message` (for `MessageStructure=json`, the `default` value)."""
        return [envelope["Message"] for envelope in self.envelopes()]


def subscribed_topic(name: str) -> SubscribedTopic:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-matcher")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return SubscribedTopic(topic_arn, queue_url)


def canonical_ids_of(connect_registry: Any, work_ids: list[str]) -> dict[str, str]:
    """The registry's canonical ID of each work, looked up independently of the pipeline."""
    sources = {w: SourceIdentifier.parse(w) for w in work_ids}
    with Minter(connect_registry) as minter:
        found = minter.lookup_ids(sources.values())
    assert set(found) == set(sources.values()), "every work should be registered"
    return {w: found[source] for w, source in sources.items()}


@dataclass
class FlakySns:
    """A real SNS client whose `PublishBatch` answers, for the canonical IDs in `failing`, as SNS
    does when it cannot take an entry: the entry is not sent and is listed under `Failed`."""

    client: Any
    failing: dict[str, int]  # canonical ID -> how many more calls it fails (-1: always)
    sender_fault: bool = False
    calls: list[list[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish_batch(self, *, TopicArn: str, PublishBatchRequestEntries: list[dict]) -> dict:
        with self._lock:
            self.calls.append([entry["Id"] for entry in PublishBatchRequestEntries])
            refused = []
            for entry in PublishBatchRequestEntries:
                left = self.failing.get(entry["Id"], 0)
                if left:
                    refused.append(entry)
                    self.failing[entry["Id"]] = left - 1 if left > 0 else left
        sent = [e for e in PublishBatchRequestEntries if e not in refused]
        response = (
            self.client.publish_batch(TopicArn=TopicArn, PublishBatchRequestEntries=sent)
            if sent
            else {"Successful": [], "Failed": []}
        )
        response["Failed"] = response.get("Failed", []) + [
            {
                "Id": entry["Id"],
                "Code": "InvalidParameter" if self.sender_fault else "InternalError",
                "Message": "injected by the test",
                "SenderFault": self.sender_fault,
            }
            for entry in refused
        ]
        return response
