"""The Lambda handler, against the real registry and the embedded store: Step Functions requests,
and queued records (SQS event source mapping, EventBridge Pipes) with partial batch responses."""

import json
import logging
import re
import uuid

import boto3
import pytest
from queued_events import sns_notification, sqs_record
from sns_helpers import canonical_ids_of, subscribed_topic
from works_helpers import fill_pool, work

from idminter_pipeline.aws_lambda import dispatch
from idminter_pipeline.aws_lambda.dispatch import lambda_environment
from idminter_pipeline.aws_lambda.events import parse_event
from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.core.errors import (
    DownstreamNotificationError,
    InvalidInputError,
    PoolExhaustedError,
)
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore, WindowScope


@pytest.fixture
def lambda_env(works_store_env, connect_registry):
    fill_pool(connect_registry, 2_000)
    store = SqliteWorksStore(works_store_env)
    store.put_source(
        [
            work("sierra-system-number", "b1161044x", indexed_at="2026-07-30T10:00:00.000Z"),
            work(
                "axiell-collections-id",
                "12345",
                indexed_at="2026-07-30T10:00:05.000Z",
                predecessor=("sierra-system-number", "b1161044x"),
            ),
            work("sierra-system-number", "b2", indexed_at="2026-07-30T10:15:00.000Z"),
        ]
    )
    yield store
    store.close()


def test_scala_shaped_event_returns_processed_identifiers_and_job_id(lambda_env):
    event = {
        "sourceIdentifiers": ["sierra-system-number/b1161044x", "axiell-collections-id/12345"],
        "jobId": "2026-01-29T10:30:00Z",
    }
    # The successor inherited its predecessor's ID and holds their one document: the
    # predecessor is superseded, neither processed nor failed (works.succession).
    assert handler(event, None) == {
        "processedIdentifiers": ["axiell-collections-id/12345"],
        "jobId": "2026-01-29T10:30:00Z",
        "failures": [],
        # The reference port's answer beside it (no S3_BUCKET here: no report).
        "job_id": "2026-01-29T10:30:00Z",
        "window": None,
        "success_count": 1,
        "failure_count": 0,
        "report_s3_uri": None,
    }
    assert lambda_env.count_identified() == 1


def test_snake_case_and_failures_are_reported(lambda_env):
    result = handler(
        {
            "source_identifiers": ["sierra-system-number/b2", "sierra-system-number/nope"],
            "job_id": "j-7",
        },
        None,
    )
    assert result["processedIdentifiers"] == ["sierra-system-number/b2"]
    assert result["jobId"] == "j-7"
    assert result["failures"] == [
        {
            "sourceIdentifier": "sierra-system-number/nope",
            "stage": "read",
            "detail": f"not found in sqlite:{lambda_env.path}",
        }
    ]


def test_window_and_full_scopes(lambda_env):
    result = handler(
        {"window": {"startTime": "2026-07-30T10:00:00Z", "endTime": "2026-07-30T10:00:05Z"}}, None
    )
    assert result["processedIdentifiers"] == ["axiell-collections-id/12345"]  # b1161044x superseded
    assert result["jobId"] == result["job_id"] and re.fullmatch(
        r"\d{8}T\d{4}-[0-9a-f]{8}", result["jobId"]
    )
    assert result["window"] == {
        "start_time": "2026-07-30T10:00:00Z",
        "end_time": "2026-07-30T10:00:05Z",
    }
    result = handler({"full": True, "jobId": "everything"}, None)
    assert len(result["processedIdentifiers"]) == 2 and result["failures"] == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "names no scope"),
        ({"jobId": "x"}, "names no scope"),
        ({"sourceIdentifiers": []}, "sourceIdentifiers is empty"),
        ({"sourceIdentifiers": "sierra-system-number/b1"}, "must be an array, got string"),
        ({"sourceIdentifiers": ["a/b"], "full": True}, "mixes scopes (sourceIdentifiers, full)"),
        (
            {
                "window": {"startTime": "2026-07-30T10:00:00Z", "endTime": "2026-07-30T11:00:00Z"},
                "full": True,
            },
            "mixes scopes (window, full)",
        ),
        ({"sourceIdentifiers": ["a/b"], "source_identifiers": ["a/b"]}, "not both"),
        ({"window": {"startTime": "2026-07-30T10:00:00Z"}}, "window needs endTime"),
        ({"window": {"startTime": "tomorrow", "endTime": "2026-07-30T11:00:00Z"}}, "'tomorrow'"),
        ({"full": "yes"}, "full must be true, got 'yes'"),
        ({"sourceIdentifiers": ["b1161044x"]}, "'b1161044x'"),
        ({"sourceIdentifiers": ["a/b"], "jobId": 5}, "jobId must be a non-empty string"),
        (["a/b"], "must be a JSON object, got array"),
    ],
)
def test_bad_events_are_rejected_naming_the_problem(event, message):
    with pytest.raises(InvalidInputError) as raised:
        parse_event(event)
    assert message in str(raised.value)


def test_parsed_scopes():
    assert parse_event({"sourceIdentifiers": ["sierra-system-number/b1"]}) == (
        IdsScope(("Work[sierra-system-number/b1]",)),
        None,
    )
    scope, job = parse_event(
        {
            "window": {"start_time": "2026-07-30T10:00:00Z", "end_time": "2026-07-30T10:15:00Z"},
            "jobId": "j",
        }
    )
    assert isinstance(scope, WindowScope) and scope.end_inclusive and job == "j"
    assert parse_event({"full": True, "full_ignored": 1})[0] == FullScope()
    assert parse_event({"full": False, "sourceIdentifiers": ["a/b"]})[0] == IdsScope(("a/b",))


def test_pool_exhaustion_raises_so_step_functions_retries(works_store_env):
    with SqliteWorksStore(works_store_env) as store:
        store.put_source(generate_works(3))
    with pytest.raises(Exception, match="free-ID pool exhausted"):
        handler({"full": True}, None)


# --- Queued records: SQS event source mapping and EventBridge Pipes -----------------------------

GOOD_BODIES = {
    "m-envelope": sns_notification("Work[sierra-system-number/b1161044x]"),
    "m-envelope-bare-form": sns_notification("axiell-collections-id/12345"),
    "m-bare": "sierra-system-number/b2",
}
BAD_BODIES = {
    # Duplicate keys: refused for this record alone, not "last one wins".
    "m-duplicate-key": (
        '{"Type": "Notification", "Message": "sierra-system-number/b2", '
        '"Message": "sierra-system-number/b1161044x"}'
    ),
    "m-not-in-index": sns_notification("sierra-system-number/b-missing"),
    "m-not-an-identifier": "hello",
    "m-json-array": '["sierra-system-number/b2"]',
    "m-confirmation": json.dumps(
        {"Type": "SubscriptionConfirmation", "Message": "sierra-system-number/b2"}
    ),
    "m-padded": sns_notification(" sierra-system-number/b2"),
}


def _records(bodies):
    return [sqs_record(message_id, body) for message_id, body in bodies.items()]


def _run_summaries(caplog):
    (record,) = [r for r in caplog.records if hasattr(r, "run_summaries")]
    return record.run_summaries


def _failed_ids(response):
    assert set(response) == {"batchItemFailures"}
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


@pytest.mark.parametrize("shape", ["event source mapping", "pipe without template"])
def test_queued_records_are_minted_together_and_bad_ones_named(lambda_env, caplog, shape):
    records = _records({**GOOD_BODIES, **BAD_BODIES})
    event = {"Records": records} if shape == "event source mapping" else records
    caplog.set_level(logging.INFO, logger="idminter_pipeline.aws_lambda.handler")
    response = handler(event, None)

    assert _failed_ids(response) == list(BAD_BODIES)  # exactly the bad ones, in batch order
    (summary,) = _run_summaries(caplog)
    assert summary["batches"] == 1 and summary["mint_calls"] == 1  # one registry batch
    # b1161044x's successor is in the batch: superseded, done, not a failed record.
    assert summary["works_read"] == 4 and summary["works_written"] == 2
    assert summary["superseded"] == [
        {
            "sourceIdentifier": "Work[sierra-system-number/b1161044x]",
            "heldBy": "Work[axiell-collections-id/12345]",
        }
    ]
    assert lambda_env.count_identified() == 2  # the successor shares its predecessor's document
    logged = caplog.text
    assert "m-duplicate-key body is not valid JSON (duplicate key 'Message')" in logged
    assert "m-confirmation: body is JSON but not an SNS notification" in logged
    assert "m-not-in-index: Work[sierra-system-number/b-missing] read: not found" in logged
    assert "m-padded: invalid source identifier" in logged


def test_a_pipe_batch_of_template_requests(lambda_env, caplog):
    caplog.set_level(logging.INFO, logger="idminter_pipeline.aws_lambda.handler")
    event = [
        {"messageId": "a", "sourceIdentifiers": ["Work[sierra-system-number/b2]"], "jobId": "p"},
        {"messageId": "b", "sourceIdentifiers": ["axiell-collections-id/12345"], "jobId": "p"},
        {"messageId": "c", "sourceIdentifiers": ["sierra-system-number/b1161044x"], "jobId": "p"},
        {"messageId": "d", "sourceIdentifiers": [""], "jobId": "p"},
        {"messageId": "e", "full": True, "jobId": "p"},
        {"messageId": "f", "sourceIdentifiers": ["x" * 10_000], "jobId": "p"},
    ]
    assert _failed_ids(handler(event, None)) == ["d", "e", "f"]
    (summary,) = _run_summaries(caplog)
    assert summary["job_id"] == "p" and summary["mint_calls"] == 1
    assert "e: a queued request must name sourceIdentifiers" in caplog.text
    assert "(10,000 characters in all)" in caplog.text and "x" * 300 not in caplog.text


def test_records_naming_different_job_ids_are_minted_per_job_id(lambda_env, caplog):
    caplog.set_level(logging.INFO, logger="idminter_pipeline.aws_lambda.handler")
    event = [
        {"messageId": "a", "sourceIdentifiers": ["sierra-system-number/b2"], "jobId": "one"},
        sqs_record("b", sns_notification("sierra-system-number/b1161044x")),
    ]
    assert _failed_ids(handler(event, None)) == []
    assert [s["job_id"] for s in _run_summaries(caplog)] == ["one", None]


def test_requests_without_message_ids_get_the_step_functions_answer(lambda_env):
    response = handler(
        [
            {"sourceIdentifiers": ["sierra-system-number/b2"], "jobId": "j"},
            {"sourceIdentifiers": ["sierra-system-number/nope"], "jobId": "j"},
        ],
        None,
    )
    assert response["processedIdentifiers"] == ["sierra-system-number/b2"]
    assert response["jobId"] == "j"
    assert [f["sourceIdentifier"] for f in response["failures"]] == ["sierra-system-number/nope"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "the batch holds no records"),
        ({"Records": []}, "the batch holds no records"),
        ({"Records": "x"}, "Records must be an array, got string"),
        (
            [sqs_record("a", "sierra-system-number/b2"), {"body": "sierra-system-number/b1"}],
            "record 1 of the batch has no messageId",
        ),
        (
            [sqs_record("a", "sierra-system-number/b2"), sqs_record("a", "mets/m1")],
            "message id 'a' appears twice",
        ),
        ([{"sourceIdentifiers": ["a/b"]}, {"window": {}}], "request 1 of the batch"),
    ],
)
def test_batches_that_cannot_be_reported_per_record_are_refused_whole(lambda_env, event, message):
    with pytest.raises(InvalidInputError) as raised:
        handler(event, None)
    assert message in str(raised.value)
    assert lambda_env.count_identified() == 0


def test_an_exhausted_pool_fails_the_whole_queued_batch(works_store_env):
    with SqliteWorksStore(works_store_env) as store:
        store.put_source([work("sierra-system-number", "b2")])
    with pytest.raises(PoolExhaustedError):
        handler({"Records": [sqs_record("a", "sierra-system-number/b2")]}, None)


def test_the_lambda_announces_exactly_the_written_works(
    lambda_env, aws_env, monkeypatch, connect_registry
):
    topic = subscribed_topic(f"matcher-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN", topic.topic_arn)
    response = handler({"Records": _records({**GOOD_BODIES, **BAD_BODIES})}, None)
    assert _failed_ids(response) == list(BAD_BODIES)
    written = ["Work[axiell-collections-id/12345]", "Work[sierra-system-number/b2]"]
    assert sorted(topic.received()) == sorted(canonical_ids_of(connect_registry, written).values())

    # The topic gone: nothing concerns one record more than another, so the batch is retried.
    monkeypatch.setenv("IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN", f"{topic.topic_arn}-gone")
    with pytest.raises(DownstreamNotificationError, match="NotFound"):
        handler({"Records": _records(GOOD_BODIES)}, None)


def test_the_elasticsearch_key_is_read_from_its_secret(aws_env):
    secrets = boto3.client("secretsmanager")
    name = f"es-key-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString="ZW5jb2RlZDprZXk=")
    env = lambda_environment({"ES_API_KEY_SECRET_NAME": name, "AWS_REGION": "eu-west-1"})
    assert env["ES_API_KEY"] == "ZW5jb2RlZDprZXk="
    assert "ES_API_KEY" not in lambda_environment({"AWS_REGION": "eu-west-1"})


def test_a_full_event_with_a_job_id_resumes_after_the_last_written_batch(
    lambda_env, connect_registry
):
    """An invocation that died (a Lambda timeout) after its first batch: invoked again with the
    same jobId, it goes on from the second batch."""
    from idminter_pipeline.registry.minting import Minter  # noqa: PLC0415
    from idminter_pipeline.works.checkpoints import RunCheckpoints  # noqa: PLC0415
    from idminter_pipeline.works.pipeline import WorksPipeline  # noqa: PLC0415

    class DiesAtSecondWrite(SqliteWorksStore):
        writes = 0

        def write_identified(self, works):
            self.writes += 1
            if self.writes == 2:
                raise TimeoutError("the Lambda timed out")
            return super().write_identified(works)

    with (
        DiesAtSecondWrite(lambda_env.path) as dying,
        Minter(connect_registry) as minter,
        RunCheckpoints(connect_registry) as checkpoints,
        pytest.raises(TimeoutError),
    ):
        WorksPipeline(dying, minter, batch_size=2).run(
            FullScope(), job_id="sf-full-1", checkpoints=checkpoints
        )
    result = handler({"full": True, "jobId": "sf-full-1"}, None)
    assert result["processedIdentifiers"] == ["sierra-system-number/b2"]
    assert result["failures"] == []
    assert lambda_env.count_identified() == 2  # b1161044x and its successor share one document


PAIRS = 30


@pytest.fixture
def store(works_store_env, connect_registry):
    fill_pool(connect_registry, 500)
    with SqliteWorksStore(works_store_env) as opened:
        yield opened


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
    assert _failed_ids(handler(event, None)) == ["bad"]
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

    assert _failed_ids(handler({"Records": records}, None)) == []

    ids = canonical_ids_of(connect_registry, [w.id for w in [*predecessors, *successors]])
    assert len(set(ids.values())) == PAIRS  # each successor shares its predecessor's ID
    received = topic.received()
    assert sorted(received) == sorted(set(ids.values()))  # each once, none missing
