"""Alerts: the log-file channel, the SNS channel against moto's real server, and the resource."""

import json
import logging
import multiprocessing
import uuid

import boto3
import dagster as dg
import pytest

from idminter_pipeline.core.alerts import (
    Alert,
    LogFileChannel,
    Severity,
    SnsChannel,
    send_alert,
)
from idminter_pipeline.core.errors import AlertDeliveryError, InvalidInputError
from idminter_pipeline.defs.alerts.resources import (
    SNS_TOPIC_ENV,
    AlertsResource,
    alerts_from_env,
)

REGION = "eu-west-1"


def _alert(**overrides) -> Alert:
    fields = {
        "title": "Free-ID pool below low watermark",
        "what_happened": "The pool holds 90 free IDs, under the low watermark of 100.",
        "figures": {"free": 90, "low_watermark": 100, "hours_until_empty": 1.5},
        "what_to_do": "A replenishment run was requested; check it succeeds.",
        "severity": Severity.WARNING,
    }
    return Alert(**{**fields, **overrides})


@pytest.fixture
def subscribed_topic(aws_env):
    """An SNS topic with an SQS queue subscribed (raw delivery off: SNS's JSON envelope)."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    name = f"idminter-alerts-{uuid.uuid4().hex[:8]}"
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, sqs, queue_url


def _receive(sqs, queue_url) -> list[dict]:
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_alert_message_says_what_happened_figures_and_what_to_do():
    alert = _alert(severity=Severity.CRITICAL)
    text = alert.message()
    assert text.startswith("CRITICAL: Free-ID pool below low watermark")
    assert "The pool holds 90 free IDs" in text
    assert "free: 90" in text
    assert "hours_until_empty: 1.50" in text
    assert "A replenishment run was requested" in text
    assert alert.subject() == "[CRITICAL] Free-ID pool below low watermark (idminter-pipeline)"


def test_an_alert_about_a_run_names_the_run_the_partition_and_the_cause():
    alert = _alert(
        cause="PoolExhaustedError: free-ID pool exhausted: this call needs 86 new IDs",
        run_id="4f1c",
        partition="2026-07-30-09:00..2026-07-30-09:30",
    )
    lines = alert.message().splitlines()
    assert "Run: 4f1c" in lines
    assert "Partition: 2026-07-30-09:00..2026-07-30-09:30" in lines
    assert "Cause: PoolExhaustedError: free-ID pool exhausted: this call needs 86 new IDs" in lines
    entry = alert.as_dict()
    assert (entry["run_id"], entry["partition"]) == ("4f1c", "2026-07-30-09:00..2026-07-30-09:30")
    assert entry["cause"].startswith("PoolExhaustedError")


def test_a_huge_cause_is_cut_and_says_its_length():
    alert = _alert(cause="ProgrammingError: " + "x" * 50_000)
    assert len(alert.cause) < 1_100
    assert alert.cause.endswith("... (50,018 characters in all)")
    with pytest.raises(InvalidInputError, match="run_id"):
        _alert(run_id="  ")


def test_subject_is_flattened_and_cut_to_what_sns_accepts():
    alert = _alert(title="line one\nline two — " + "x" * 200)
    subject = alert.subject()
    assert len(subject) == 100
    assert "\n" not in subject
    assert subject.isascii()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"title": "  "}, "title"),
        ({"what_to_do": ""}, "what_to_do"),
        ({"figures": {"free": [1, 2]}}, "[1, 2]"),
    ],
)
def test_bad_alerts_are_refused_naming_the_value(overrides, named):
    with pytest.raises(InvalidInputError, match=named.replace("[", r"\[").replace("]", r"\]")):
        _alert(**overrides)


def test_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="urgent"):
        _alert(severity="urgent")


def test_log_file_channel_writes_one_json_line_per_alert(tmp_path):
    channel = LogFileChannel(tmp_path / "nested" / "alerts.log")
    channel.deliver(_alert())
    channel.deliver(_alert(severity=Severity.CRITICAL, figures={"free": 0}))
    lines = (tmp_path / "nested" / "alerts.log").read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["severity"] == "warning"
    assert first["figures"] == {"free": 90, "low_watermark": 100, "hours_until_empty": 1.5}
    assert first["what_to_do"].startswith("A replenishment run")
    assert second["severity"] == "critical"
    assert channel.read() == [first, second]


def _write_alerts(path: str, worker: int, count: int) -> None:
    channel = LogFileChannel(path)
    for n in range(count):
        channel.deliver(_alert(title=f"worker {worker} alert {n}", figures={"n": "y" * 5000}))


def test_log_file_lines_stay_whole_when_processes_write_at_once(tmp_path):
    path = str(tmp_path / "alerts.log")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_alerts, args=(path, w, 50)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    titles = sorted(entry["title"] for entry in LogFileChannel(path).read())
    assert titles == sorted(f"worker {w} alert {n}" for w in range(2) for n in range(50))


def test_sns_channel_publishes_to_a_real_topic(subscribed_topic):
    topic_arn, sqs, queue_url = subscribed_topic
    SnsChannel(topic_arn).deliver(_alert(severity=Severity.CRITICAL))
    [envelope] = _receive(sqs, queue_url)
    assert envelope["TopicArn"] == topic_arn
    assert envelope["Subject"] == (
        "[CRITICAL] Free-ID pool below low watermark (idminter-pipeline)"
    )
    assert "under the low watermark of 100" in envelope["Message"]
    assert "low_watermark: 100" in envelope["Message"]
    assert "What to do:" in envelope["Message"]
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"


def test_sns_channel_takes_its_region_from_the_arn():
    channel = SnsChannel("arn:aws:sns:eu-west-2:123456789012:alerts")
    assert channel.region == "eu-west-2"
    with pytest.raises(InvalidInputError, match="not-an-arn"):
        SnsChannel("not-an-arn")


def test_a_failing_channel_does_not_stop_the_others(aws_env, tmp_path):
    missing_topic = f"arn:aws:sns:{REGION}:123456789012:no-such-topic-{uuid.uuid4().hex[:6]}"
    log_file = LogFileChannel(tmp_path / "alerts.log")
    with pytest.raises(AlertDeliveryError, match="sns") as raised:
        send_alert(_alert(), [SnsChannel(missing_topic), log_file])
    assert raised.value.delivered == ["log-file"]
    assert "sns" in raised.value.failures
    assert len(log_file.read()) == 1


def test_resource_locally_logs_and_writes_the_file(tmp_path, caplog):
    resource = AlertsResource(log_file=str(tmp_path / "alerts.log"))
    with caplog.at_level(logging.WARNING, logger="idminter_pipeline.core.alerts"):
        delivery = resource.send(_alert())
    assert delivery.delivered == ("log", "log-file")
    assert "under the low watermark of 100" in caplog.text
    [entry] = resource.log_file_channel().read()
    assert entry["title"] == "Free-ID pool below low watermark"


def test_resource_sends_to_sns_when_the_topic_variable_is_set(
    subscribed_topic, tmp_path, monkeypatch
):
    topic_arn, sqs, queue_url = subscribed_topic
    monkeypatch.setenv(SNS_TOPIC_ENV, topic_arn)
    monkeypatch.setenv("IDMINTER_ALERTS_LOG", str(tmp_path / "alerts.log"))
    resource = alerts_from_env()
    # The UI and run config see the variable's name, not the topic.
    assert resource._convert_to_config_dictionary()["sns_topic_arn"] == {"env": SNS_TOPIC_ENV}

    @dg.op
    def raise_alert(context: dg.OpExecutionContext, alerts: AlertsResource) -> None:
        alerts.send(_alert(severity=Severity.CRITICAL), log=context.log)

    @dg.job(resource_defs={"alerts": resource})
    def alert_job() -> None:
        raise_alert()

    instance = dg.DagsterInstance.ephemeral()
    result = alert_job.execute_in_process(instance=instance)
    assert result.success
    [envelope] = _receive(sqs, queue_url)
    assert envelope["Subject"].startswith("[CRITICAL] Free-ID pool")
    # The Dagster event log got the alert too.
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("under the low watermark of 100" in message for message in logged)
    assert len(LogFileChannel(tmp_path / "alerts.log").read()) == 1


def test_without_the_topic_variable_there_is_no_sns_channel(monkeypatch, tmp_path):
    monkeypatch.delenv(SNS_TOPIC_ENV, raising=False)
    resource = alerts_from_env()
    assert [c.name for c in resource.channels()] == ["log", "log-file"]
