"""One queued record's bad field fails that record alone, and one invocation announces each
canonical ID once. Against the real registry, the embedded store and SNS on
the moto server."""

from __future__ import annotations

import logging
import uuid

import pytest
from queued_events import sns_notification, sqs_record
from sns_helpers import canonical_ids_of, subscribed_topic
from works_helpers import fill_pool, work

from idminter_pipeline.aws_lambda import dispatch
from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.works.stores import SqliteWorksStore

PAIRS = 30


@pytest.fixture
def store(registry_env, connect_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    fill_pool(connect_registry, 500)
    with SqliteWorksStore(tmp_path / "works.sqlite3") as opened:
        yield opened


def _failed(response: dict) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


@pytest.mark.parametrize(
    ("bad_job_id", "named"),
    [
        ("j" * 300, "is 300 characters long; at most 255 fit"),
        ("nightly\x07run", "contains control character U+0007 at position 7"),
    ],
)
def test_a_records_unstorable_job_id_fails_that_record_alone(store, caplog, bad_job_id, named):
    store.put_source([work("sierra-system-number", f"b{n}") for n in range(3)])
    caplog.set_level(logging.WARNING, logger="idminter_pipeline.aws_lambda.handler")
    event = [
        {"messageId": "a", "sourceIdentifiers": ["sierra-system-number/b0"], "jobId": "pipe"},
        {"messageId": "bad", "sourceIdentifiers": ["sierra-system-number/b1"], "jobId": bad_job_id},
        {"messageId": "c", "sourceIdentifiers": ["sierra-system-number/b2"], "jobId": "pipe"},
    ]
    assert _failed(handler(event, None)) == ["bad"]
    assert store.count_identified() == 2  # b0 and b2; b1 was never minted nor written
    assert "bad: invalid job id" in caplog.text and named in caplog.text
    assert "j" * 250 not in caplog.text  # named by an excerpt, not whole


def test_one_invocation_announces_each_canonical_id_once_across_its_batches(
    store, aws_env, monkeypatch, connect_registry
):
    """Successors in the invocation's second internal batch inherit the canonical IDs of
    predecessors written in its first: one message per canonical ID, after the last write.
    The Lambda's internal batch (5,000 works, so 10,000 records make two) is lowered to
    `PAIRS` so 2 x `PAIRS` records make two batches the same way."""
    monkeypatch.setattr(dispatch, "MAX_BATCH_SIZE", PAIRS)
    topic = subscribed_topic(f"matcher-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN", topic.topic_arn)
    predecessors = [
        work("sierra-system-number", f"b{n}", indexed_at="2026-07-30T09:00:00.000Z")
        for n in range(PAIRS)
    ]
    successors = [
        work(
            "axiell-collections-id",
            f"a{n}",
            indexed_at="2026-07-30T09:00:01.000Z",
            predecessor=("sierra-system-number", f"b{n}"),
        )
        for n in range(PAIRS)
    ]
    store.put_source([*predecessors, *successors])
    records = [
        sqs_record(f"m{n}", sns_notification(w.id.removeprefix("Work[").removesuffix("]")))
        for n, w in enumerate([*predecessors, *successors])
    ]

    assert _failed(handler({"Records": records}, None)) == []

    ids = canonical_ids_of(connect_registry, [w.id for w in [*predecessors, *successors]])
    assert len(set(ids.values())) == PAIRS  # each successor shares its predecessor's ID
    received = topic.received()
    assert sorted(received) == sorted(set(ids.values()))  # each once, none missing
