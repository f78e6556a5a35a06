"""Downstream notification: written works' canonical IDs reach an SNS topic (moto, over HTTP) in
the reference port's format, from the pipeline, the CLI and Dagster; failures stay per work."""

import json
import uuid

import boto3
import pytest
from click.testing import CliRunner
from sns_helpers import FlakySns, canonical_ids_of, subscribed_topic
from tenacity import wait_none
from works_helpers import fill_pool, work

from idminter_pipeline.cli import main
from idminter_pipeline.core.errors import DownstreamNotificationError, InvalidInputError
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.documents import SourceWork, Stage
from idminter_pipeline.works.downstream import (
    SNS_BATCH_SIZE,
    TOPIC_ARN_ENV,
    SnsNotifier,
    downstream_notifier_from_env,
    message_entry,
    topic_region,
)
from idminter_pipeline.works.pipeline import WorksPipeline
from idminter_pipeline.works.sample_data import generate_works
from idminter_pipeline.works.stores import FullScope, IdsScope, SqliteWorksStore

BROKEN = SourceWork(
    "Work[sierra-system-number/b-broken]", {"indexed_at": "2026-07-30T09:00:00Z", "data": {}}
)


@pytest.fixture
def topic(aws_env):
    return subscribed_topic(f"identified-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def minter(connect_registry):
    fill_pool(connect_registry, 3_000)
    with Minter(connect_registry) as m:
        yield m


def _notifier(topic, **kwargs):
    return SnsNotifier(topic.topic_arn, wait=wait_none(), **kwargs)


def test_written_works_are_announced_once_each_in_batches_of_ten(
    topic, store, minter, connect_registry
):
    works = list(generate_works(45, seed=3))
    store.put_source([*works, BROKEN])
    client = FlakySns(boto3.client("sns"), failing={})
    notifier = _notifier(topic, client=client)
    summary = WorksPipeline(store, minter, batch_size=20, notifier=notifier).run(FullScope())

    # A predecessor batched with its successor is superseded: not written, not announced.
    assert summary.works_superseded > 0, "the sample should hold successors sharing an ID"
    assert summary.works_written == 45 - summary.works_superseded
    assert summary.failures_by_stage["extract"] == 1
    expected = canonical_ids_of(connect_registry, summary.processed).values()
    received = topic.received()
    assert sorted(received) == sorted(expected)
    superseded = canonical_ids_of(connect_registry, [s.work_id for s in summary.superseded])
    assert set(superseded.values()) <= set(received), "announced once, by the successor"
    assert summary.works_notified == summary.works_written
    assert summary.failures_by_stage["notify"] == 0
    assert all(1 <= len(call) <= SNS_BATCH_SIZE for call in client.calls)
    assert sum(len(call) for call in client.calls) == len(received)
    assert len(client.calls) >= 3  # 45 works in batches of 20: at least one call per batch


def test_message_format_is_the_reference_ports():
    assert message_entry("a2345bcd") == {
        "Id": "a2345bcd",
        "Message": json.dumps({"default": "a2345bcd"}),
        "MessageStructure": "json",
    }


def test_entries_that_fail_are_retried_then_fail_their_works_at_stage_notify(
    topic, store, minter, connect_registry
):
    works = [work("sierra-system-number", f"b{i}") for i in range(12)]
    store.put_source(works)
    WorksPipeline(store, minter).run(FullScope())  # registers the IDs, announces nothing
    ids = canonical_ids_of(connect_registry, [w.id for w in works])
    flaky_id, dead_id = ids[works[0].id], ids[works[1].id]

    client = FlakySns(boto3.client("sns"), failing={flaky_id: 2, dead_id: -1})
    notifier = _notifier(topic, client=client, max_attempts=3)
    summary = WorksPipeline(store, minter, notifier=notifier).run(FullScope())

    assert sorted(topic.received()) == sorted(set(ids.values()) - {dead_id})
    assert summary.works_written == 12 and summary.works_notified == 11
    assert [(f.work_id, f.stage) for f in summary.failures] == [(works[1].id, Stage.NOTIFY)]
    assert f"canonical ID {dead_id} after 3 attempts: InternalError" in summary.failures[0].detail
    assert sum(dead_id in call for call in client.calls) == 3
    assert sum(flaky_id in call for call in client.calls) == 3  # failed twice, then sent
    assert store.get_identified([dead_id]), "the work stays written"

    # Re-running the scope announces the work again.
    again = WorksPipeline(store, minter, notifier=_notifier(topic)).run(IdsScope((works[1].id,)))
    assert again.works_notified == 1 and topic.received() == [dead_id]


def test_sender_faults_are_not_retried(topic, store, minter, connect_registry):
    works = [work("sierra-system-number", f"b{i}") for i in range(3)]
    store.put_source(works)
    WorksPipeline(store, minter).run(FullScope())
    refused = canonical_ids_of(connect_registry, [works[2].id])[works[2].id]
    client = FlakySns(boto3.client("sns"), failing={refused: -1}, sender_fault=True)
    summary = WorksPipeline(store, minter, notifier=_notifier(topic, client=client)).run(
        FullScope()
    )
    assert [f.work_id for f in summary.failures] == [works[2].id]
    assert "SNS refused canonical ID" in summary.failures[0].detail
    assert sum(refused in call for call in client.calls) == 1
    assert len(topic.received()) == 2


def test_a_missing_topic_stops_the_run_after_what_was_written(aws_env, store, minter):
    store.put_source(generate_works(30, seed=5))
    missing = "arn:aws:sns:eu-west-1:123456789012:no-such-topic"
    pipeline = WorksPipeline(
        store, minter, batch_size=10, notifier=SnsNotifier(missing, wait=wait_none())
    )
    with pytest.raises(DownstreamNotificationError, match="NotFound") as raised:
        pipeline.run(FullScope())
    assert raised.value.topic_arn == missing
    assert store.count_identified() > 0, "the first batch was written before the publish failed"


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("matcher-topic", "is not an SNS topic ARN"),
        ("arn:aws:sqs:eu-west-1:123456789012:q", "is not an SNS topic ARN"),
        ("arn:aws:sns:eu-west-1:123456789012:t.fifo", "names a FIFO topic"),
        ("arn:aws:sns:eu-west-1:1234:t", "is not an SNS topic ARN"),
        ("x" * 5_000, "(5,000 characters in all)"),
    ],
)
def test_bad_topic_arns_are_refused(arn, message):
    with pytest.raises(InvalidInputError, match=TOPIC_ARN_ENV) as raised:
        downstream_notifier_from_env({TOPIC_ARN_ENV: arn})
    assert message in str(raised.value)
    assert len(str(raised.value)) < 400


def test_unset_topic_means_no_notification():
    assert downstream_notifier_from_env({}) is None
    assert downstream_notifier_from_env({TOPIC_ARN_ENV: ""}) is None
    assert topic_region("arn:aws:sns:us-east-2:123456789012:matcher") == "us-east-2"


@pytest.fixture
def cli_env(works_store_env, connect_registry):
    fill_pool(connect_registry, 3_000)
    with SqliteWorksStore(works_store_env) as store:
        store.put_source(generate_works(25, seed=8))
    return works_store_env


def test_cli_mint_announces_the_written_works(cli_env, topic, monkeypatch, connect_registry):
    monkeypatch.setenv(TOPIC_ARN_ENV, topic.topic_arn)
    result = CliRunner().invoke(main, ["mint", "--source-identifiers", "Work[nope/none]"])
    assert result.exit_code == 1 and topic.received() == []  # nothing written, nothing sent

    works = [w.id for w in generate_works(25, seed=8)]
    result = CliRunner().invoke(main, ["mint", "--source-identifiers", *works[:10]])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # Works 0 and 4 are superseded by their successors 6 and 8: not announced.
    assert (report["works_notified"], report["works_superseded"]) == (8, 2)
    expected = set(canonical_ids_of(connect_registry, works[:10]).values())
    assert sorted(topic.received()) == sorted(expected)


def test_cli_refuses_a_bad_topic_arn_before_minting(cli_env, monkeypatch, aws_env):
    monkeypatch.setenv(TOPIC_ARN_ENV, "not-an-arn")
    result = CliRunner().invoke(main, ["mint", "--full"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {TOPIC_ARN_ENV} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME): "
        "'not-an-arn'"
    )
    with SqliteWorksStore(cli_env) as store:
        assert store.count_identified() == 0
