"""SQS records and SNS notifications as AWS delivers them to Lambda and to EventBridge Pipes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

REGION = "eu-west-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:idminter-legacy-input"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:mets-transformer-output"
PIPE_NAME = "idminter-legacy"


def sns_notification(message: str, *, message_id: str = "sns-1") -> str:
    """The body SQS holds for an SNS subscription without raw message delivery."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": TOPIC_ARN,
            "Message": message,
            "Timestamp": "2026-07-30T09:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertURL": "https://sns.example/cert.pem",
            "UnsubscribeURL": "https://sns.example/unsubscribe",
        }
    )


def sqs_record(message_id: str, body: Any) -> dict[str, Any]:
    """One record of an SQS event source mapping event (the same shape a Pipe reads)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1785402000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1785402000001",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def pipe_reserved_variables() -> dict[str, str]:
    return {
        "aws.pipes.pipe-name": PIPE_NAME,
        "aws.pipes.pipe-arn": f"arn:aws:pipes:{REGION}:{ACCOUNT}:pipe/{PIPE_NAME}",
        "aws.pipes.source-arn": QUEUE_ARN,
        "aws.pipes.target-arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:idminter-minter",
        "aws.pipes.event.ingestion-time": "2026-07-30T09:00:01.000Z",
    }
