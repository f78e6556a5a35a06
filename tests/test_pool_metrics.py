"""The pool sensor's free count as a CloudWatch metric (EMF on stdout), against the real
registry, and the alarm in deploy/aws/dagster-ecs.yaml that reads it: same namespace, metric,
dimensions and threshold, and silence counted as breaching."""

import json
from pathlib import Path

import dagster as dg
import pytest
from cfnlint.decode import cfn_yaml
from cli_process import run_python
from test_pool_dagster import _drain_to, _fill
from test_pool_sensor_observations import NO_FORECAST, Daemon, _resources

from idminter_pipeline.defs.pool.metrics import (
    DIMENSIONS,
    FREE_IDS_CAP_METRIC,
    FREE_IDS_METRIC,
    METRICS_NAMESPACE_ENV,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "aws" / "dagster-ecs.yaml"
NAMESPACE = "IdMinter/rehearsal"


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _emf_lines(text: str) -> list[dict]:
    documents = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def _check_emf(document: dict) -> dict[str, float]:
    """The metrics of one EMF document, after checking it as CloudWatch Logs would: every
    metric and dimension named in a directive is a member of the root with a usable value."""
    directives = document["_aws"]["CloudWatchMetrics"]
    assert isinstance(document["_aws"]["Timestamp"], int)
    values = {}
    for directive in directives:
        for dimension_set in directive["Dimensions"]:
            for dimension in dimension_set:
                assert isinstance(document[dimension], str) and document[dimension]
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool)
            values[metric["Name"]] = value
    return values


def test_each_tick_writes_the_true_free_count_as_one_emf_line(
    registry, tmp_path, instance, monkeypatch, capsys
):
    monkeypatch.setenv(METRICS_NAMESPACE_ENV, NAMESPACE)
    daemon = Daemon(instance, _resources(registry, tmp_path, NO_FORECAST))
    _fill(registry, 1_500)
    daemon.tick()  # above the sensor's cap (the low watermark, 1,000)
    _drain_to(registry, 150)  # below the critical watermark (200)
    daemon.tick()
    documents = _emf_lines(capsys.readouterr().out)
    assert len(documents) == 2
    above, below = (_check_emf(d) for d in documents)
    # Above the cap the count stops at cap + 1: "more than 1,000", never a made-up level.
    assert above == {FREE_IDS_METRIC: 1_001, FREE_IDS_CAP_METRIC: 1_000}
    assert documents[0]["free_is_exact"] is False
    assert below == {FREE_IDS_METRIC: 150, FREE_IDS_CAP_METRIC: 1_000}
    assert documents[1]["free_is_exact"] is True
    assert documents[1]["critical_watermark"] == 200
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in documents} == {NAMESPACE}


def test_without_a_namespace_a_tick_writes_no_metric_line(registry, tmp_path, instance, capsys):
    daemon = Daemon(instance, _resources(registry, tmp_path, NO_FORECAST))
    _fill(registry, 300)
    daemon.tick()
    assert _emf_lines(capsys.readouterr().out) == []


def test_the_sensor_module_does_not_import_boto3():
    """EMF needs no AWS client: loading the sensors (as the code server does) imports no boto3."""
    probe = run_python(
        "import sys, idminter_pipeline.defs.pool.sensors, idminter_pipeline.defs.pool.metrics;"
        "print('boto3' in sys.modules)"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"


def _resources_of(path: Path = TEMPLATE) -> dict:
    return cfn_yaml.load(str(path))["Resources"]


def test_the_pool_alarm_reads_the_metric_the_sensor_writes():
    resources = _resources_of()
    alarm = resources["PoolBelowCriticalWatermarkAlarm"]["Properties"]
    container = resources["CodeLocationTask"]["Properties"]["ContainerDefinitions"][0]
    environment = {e["Name"]: e["Value"] for e in container["Environment"] if "Name" in e}
    # The namespace the code location is told to write is the one the alarm reads.
    assert environment[METRICS_NAMESPACE_ENV] == alarm["Namespace"]
    assert alarm["MetricName"] == FREE_IDS_METRIC
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == DIMENSIONS
    # One figure for both: what the sensor pages at is what the alarm pages at.
    assert alarm["Threshold"] == {"Ref": "PoolCriticalWatermark"}
    assert environment["IDMINTER_POOL_CRITICAL_WATERMARK"] == {"Ref": "PoolCriticalWatermark"}
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Statistic"] == "Minimum"
    # No tick, no line: a dead daemon or code location must page, not go quiet.
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopicArn"}]


def test_the_daemon_alarm_watches_the_daemon_service():
    resources = _resources_of()
    alarm = resources["DaemonNotRunningAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "ECS/ContainerInsights",
        "RunningTaskCount",
    )
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "ClusterName": {"Ref": "Cluster"},
        "ServiceName": {"Fn::GetAtt": ["DaemonService", "Name"]},
    }
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["TreatMissingData"] == "breaching"
    # Container Insights must be on, or the metric never exists and the alarm never clears.
    settings = resources["Cluster"]["Properties"]["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_the_dashboard_shows_both_alarms_and_the_pool_metric():
    body = _resources_of()["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = body[0]
    for needed in (
        "${PoolBelowCriticalWatermarkAlarm.Arn}",
        "${DaemonNotRunningAlarm.Arn}",
        f'"{FREE_IDS_METRIC}"',
        '"RunningTaskCount"',
        "${PoolCriticalWatermark}",
    ):
        assert needed in text, needed
    # Substituted with sample values, the body is JSON CloudWatch accepts.
    sample = text
    for name in ("Namespace", "AWS::Region", "Cluster", "DaemonService.Name"):
        sample = sample.replace("${" + name + "}", "x")
    for name in ("PoolCriticalWatermark", "PoolLowWatermark"):
        sample = sample.replace("${" + name + "}", "1")
    for name in ("PoolBelowCriticalWatermarkAlarm.Arn", "DaemonNotRunningAlarm.Arn"):
        sample = sample.replace("${" + name + "}", "arn:aws:cloudwatch:eu-west-1:1:alarm:x")
    widgets = json.loads(sample)["widgets"]
    assert [w["type"] for w in widgets] == ["metric", "alarm", "metric"]
