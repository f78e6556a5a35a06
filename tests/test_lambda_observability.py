"""The minter Lambda's logs and metrics as CloudWatch receives them: the handler run in a fresh
interpreter whose logging is set up by Lambda's own Python runtime client (awslambdaric), with
the log format and level deploy/aws/minter.yaml gives the function."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml
from cli_process import run_python
from works_helpers import embedded_store_holding, work

ROOT = Path(__file__).resolve().parent.parent
MINTER = ROOT / "deploy" / "aws" / "minter.yaml"
FUNCTION_NAME = "idminter-minter"

# What Lambda's bootstrap does before loading the handler (awslambdaric.bootstrap.run), then one
# invocation; the event comes on stdin.
RUNTIME = """
import json, os, sys
from awslambdaric.bootstrap import StandardLogSink, _setup_logging
from awslambdaric.lambda_runtime_log_utils import LogFormat, _get_log_level_from_env_var
_setup_logging(
    LogFormat.from_str(os.environ.get("AWS_LAMBDA_LOG_FORMAT")),
    _get_log_level_from_env_var(os.environ.get("AWS_LAMBDA_LOG_LEVEL")),
    StandardLogSink(),
)
from idminter_pipeline.aws_lambda.handler import handler
handler(json.loads(sys.stdin.read()), None)
"""


def _logging_config() -> dict:
    return cfn_yaml.load(str(MINTER))["Resources"]["MinterFunction"]["Properties"]["LoggingConfig"]


def _runtime_env(config: dict) -> dict[str, str]:
    """The variables Lambda sets from the function's LoggingConfig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_LAMBDA_LOG")}
    env["AWS_LAMBDA_FUNCTION_NAME"] = FUNCTION_NAME  # Lambda sets it in every function
    if "LogFormat" in config:
        env["AWS_LAMBDA_LOG_FORMAT"] = config["LogFormat"]
    if "ApplicationLogLevel" in config:
        env["AWS_LAMBDA_LOG_LEVEL"] = config["ApplicationLogLevel"]
    return env


@pytest.fixture
def minter_env(registry_env, connect_registry, tmp_path, monkeypatch):
    works = [
        work("sierra-system-number", "b1"),
        work("sierra-system-number", "b2", predecessor=("sierra-system-number", "b1")),
        work("mets", "m3"),
    ]
    embedded_store_holding(monkeypatch, tmp_path, works, connect_registry, 100)


def _invoke(event: object, env: dict[str, str]) -> list[str]:
    result = run_python(RUNTIME, env=env, stdin=json.dumps(event))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


EVENT = {
    "sourceIdentifiers": [
        "sierra-system-number/b1",
        "sierra-system-number/b2",
        "mets/m3",
        "mets/not-in-the-store",
    ],
    "jobId": "j-1",
}


def test_the_function_logs_json_at_info():
    config = _logging_config()
    assert config["LogFormat"] == "JSON" and config["ApplicationLogLevel"] == "INFO"


def test_each_run_summary_is_one_structured_json_line(minter_env):
    env = _runtime_env(_logging_config()) | {"IDMINTER_RELEASE": "v2.4.0-3a9c1f2"}
    lines = _invoke(EVENT, env)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    summaries = [r for r in records if "run" in r]
    assert len(summaries) == 1
    (summary,) = summaries
    assert (
        summary["level"] == "INFO" and summary["logger"] == "idminter_pipeline.aws_lambda.handler"
    )
    run = summary["run"]
    # b2 inherited b1's ID and holds their one document: b1 is superseded (works.succession).
    assert run["works_read"] == 4 and run["works_written"] == 2 and run["works_failed"] == 1
    assert run["works_superseded"] == 1
    assert run["identifiers_minted"] == 2 and run["identifiers_inherited"] == 1
    assert "4 works read, 2 written, 1 failed" in summary["message"]
    assert run["release"] == "v2.4.0-3a9c1f2"  # the image's IDMINTER_RELEASE


def test_the_run_summary_says_an_untagged_build_is_unreleased(minter_env):
    env = _runtime_env(_logging_config())
    env.pop("IDMINTER_RELEASE", None)
    records = [json.loads(line) for line in _invoke(EVENT, env) if line.startswith("{")]
    assert [r["run"]["release"] for r in records if "run" in r] == ["unreleased"]


def test_the_run_summary_is_logged_even_without_a_log_level(minter_env):
    """Text format and no ApplicationLogLevel: Python's root logger would stay at WARNING."""
    lines = _invoke(EVENT, _runtime_env({}))
    assert any("4 works read, 2 written, 1 failed" in line for line in lines), lines


def _emf(lines: list[str]) -> list[dict]:
    documents = [json.loads(line) for line in lines if line.startswith('{"_aws"')]
    assert documents, lines
    return documents


def _metric_values(documents: list[dict], namespace: str) -> dict[tuple, float]:
    """{(metric, dimension values...): value} from EMF documents, read as CloudWatch does."""
    values = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == namespace
            (dimensions,) = directive["Dimensions"]
            key = tuple(document[d] for d in dimensions)
            for metric in directive["Metrics"]:
                (value,) = document[metric["Name"]]
                values[(metric["Name"], *key)] = value
    return values


def test_the_run_figures_are_cloudwatch_embedded_metrics(minter_env):
    env = _runtime_env(_logging_config()) | {"IDMINTER_METRICS_NAMESPACE": "IdMinterTest"}
    values = _metric_values(_emf(_invoke(EVENT, env)), "IdMinterTest")
    assert values[("WorksRead", FUNCTION_NAME)] == 4
    assert values[("WorksWritten", FUNCTION_NAME)] == 2
    assert values[("WorksFailed", FUNCTION_NAME)] == 1
    assert values[("WorksSuperseded", FUNCTION_NAME)] == 1  # b1, under its successor b2
    assert values[("IdentifiersMinted", FUNCTION_NAME)] == 2
    assert values[("IdentifiersInherited", FUNCTION_NAME)] == 1
    assert values[("WorksFailedByStage", FUNCTION_NAME, "read")] == 1
    assert values[("WorksFailedByStage", FUNCTION_NAME, "write")] == 0
    assert values[("RunDuration", FUNCTION_NAME)] > 0


def test_a_queued_batch_reports_its_item_failures_as_a_metric(minter_env):
    records = [
        {"messageId": "a", "body": "mets/m3"},
        {"messageId": "b", "body": "mets/not-in-the-store"},
        {"messageId": "c", "body": "not an identifier"},
    ]
    values = _metric_values(_emf(_invoke(records, _runtime_env(_logging_config()))), "IdMinter")
    assert values[("BatchItemFailures", FUNCTION_NAME)] == 2
    assert values[("WorksWritten", FUNCTION_NAME)] == 1
