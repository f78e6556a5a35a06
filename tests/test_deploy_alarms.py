"""deploy/aws/minter.yaml's alarms and dashboard: each alarm watches a metric of a resource of the
stack, notifies the alarm topic and is on the dashboard; the dashboard's minter figures are
metrics the Lambda really emits. Each alarm's runbook entry: tests/test_docs_alerts.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from idminter_pipeline.aws_lambda.outcomes import InvocationTotals, emit_metrics
from idminter_pipeline.works.run_summary import RunSummary

ROOT = Path(__file__).resolve().parent.parent
MINTER = ROOT / "deploy" / "aws" / "minter.yaml"


def _resources() -> dict:
    return cfn_yaml.load(str(MINTER))["Resources"]


def _alarms() -> dict[str, dict]:
    return {
        name: resource["Properties"]
        for name, resource in _resources().items()
        if isinstance(resource, dict) and resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def _watched(alarm: dict) -> set[tuple[str, str, str]]:
    """(namespace, metric, the dimension's value as written) of each metric the alarm reads."""
    if "Metrics" in alarm:
        stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
    else:
        stats = [alarm]
    return {
        (m["Namespace"], m["MetricName"], json.dumps(d["Value"]))
        for m in stats
        for d in m["Dimensions"]
    }


def _ref(name: str) -> str:
    return json.dumps({"Ref": name})


def _queue_name(resource: str) -> str:
    return json.dumps({"Fn::GetAtt": [resource, "QueueName"]})


def test_the_alarms_an_operator_needs():
    watched = {name: _watched(alarm) for name, alarm in _alarms().items()}
    assert watched == {
        "MinterErrorsAlarm": {("AWS/Lambda", "Errors", _ref("MinterFunction"))},
        "MinterThrottlesAlarm": {("AWS/Lambda", "Throttles", _ref("MinterFunction"))},
        "ExecutionsFailedAlarm": {
            ("AWS/States", "ExecutionsFailed", _ref("MinterStateMachine")),
            ("AWS/States", "ExecutionsTimedOut", _ref("MinterStateMachine")),
            ("AWS/States", "ExecutionsFailed", _ref("WindowStateMachine")),
            ("AWS/States", "ExecutionsTimedOut", _ref("WindowStateMachine")),
        },
        "QueueBacklogAlarm": {
            ("AWS/SQS", "ApproximateAgeOfOldestMessage", _queue_name("InputQueue"))
        },
        "DeadLetterAlarm": {
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", _queue_name("InputDeadLetterQueue"))
        },
        "PipeFailuresAlarm": {("AWS/EventBridge/Pipes", "ExecutionFailed", _ref("LegacyPipe"))},
    }


@pytest.mark.parametrize("name", sorted(_alarms()))
def test_each_alarm_pages_through_the_alarm_topic_and_ignores_silence(name):
    alarm = _alarms()[name]
    topic = {"Fn::If": ["Alarms", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert alarm["AlarmActions"] == topic and alarm["OKActions"] == topic
    assert alarm["TreatMissingData"] == "notBreaching"  # no traffic is not a failure
    assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-")


def _dashboard() -> dict:
    return _resources()["MinterDashboard"]["Properties"]["DashboardBody"]["Fn::ToJsonString"]


def test_the_dashboard_shows_every_alarm():
    (alarm_widget,) = [w for w in _dashboard()["widgets"] if w["type"] == "alarm"]
    shown = {a["Fn::GetAtt"][0] for a in alarm_widget["properties"]["alarms"]}
    assert shown == set(_alarms())


def _dashboard_minter_metrics() -> set[tuple[str, ...]]:
    """(metric, dimension=value, ...) of each dashboard line in the minter's own namespace, with
    the "." shorthand resolved as CloudWatch does (same position as the line above)."""
    found = set()
    for widget in _dashboard()["widgets"]:
        previous: list = []
        for line in widget.get("properties", {}).get("metrics", []):
            fields = [f for f in line if not isinstance(f, dict) or "Ref" in f or "Fn::GetAtt" in f]
            fields = [previous[i] if f == "." else f for i, f in enumerate(fields)]
            previous = fields
            if fields[0] == {"Ref": "MetricsNamespace"}:
                dims = fields[2:]
                found.add(
                    (
                        fields[1],
                        *(f"{dims[i]}={json.dumps(dims[i + 1])}" for i in range(0, len(dims), 2)),
                    )
                )
    return found


def test_the_dashboards_minter_figures_are_metrics_the_lambda_emits(capsys, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stack-minter")
    emit_metrics(
        InvocationTotals.of([RunSummary(scope="ids", store="sqlite")]), batch_item_failures=0
    )
    emitted = set()
    for line in capsys.readouterr().out.splitlines():
        document = json.loads(line)
        # The dashboard names the function by reference; the Lambda by its name.
        document["service"] = {"Ref": "MinterFunction"}
        for directive in document["_aws"]["CloudWatchMetrics"]:
            (dimensions,) = directive["Dimensions"]
            for metric in directive["Metrics"]:
                pairs = (f"{d}={json.dumps(document[d])}" for d in dimensions)
                emitted.add((metric["Name"], *pairs))
    shown = _dashboard_minter_metrics()
    assert shown and shown <= emitted, shown - emitted
    assert {m[0] for m in emitted} <= {m[0] for m in shown}  # and every figure is shown


def test_every_template_parameter_is_documented_with_its_default():
    page = (ROOT / "docs" / "deploy" / "aws-minter.md").read_text(encoding="utf-8")
    rows = {
        match[0]: match[1]
        for match in re.findall(r"^\| `(\w+)` \| ([^|]+) \|", page, flags=re.MULTILINE)
    }
    parameters = cfn_yaml.load(str(MINTER))["Parameters"]
    assert set(rows) == set(parameters)
    for name, parameter in parameters.items():
        documented = rows[name].strip()
        if "Default" in parameter:
            default = parameter["Default"]
            shown = '""' if default == "" else str(default)
            assert documented == f"`{shown}`", name
        else:
            assert documented == "(required)", name


@pytest.mark.parametrize(
    ("namespace", "accepted"),
    [
        ("IdMinter", True),
        ("IdMinter/prod-2", True),
        ("AWS/Lambda", False),
        ("a b", False),
        ("x" * 256, False),
        ("", False),
    ],
)
def test_the_metrics_namespace_parameter_refuses_what_cloudwatch_would_drop(namespace, accepted):
    # CloudFormation matches AllowedPattern against the whole value.
    pattern = cfn_yaml.load(str(MINTER))["Parameters"]["MetricsNamespace"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, namespace)) is accepted
