"""The AWS package under deploy/: every CloudFormation template passes cfn-lint, the state machine
passes two Amazon States Language validators (asl-validator from npm, statelint from PyPI), the
Pipe's input template turns an SQS record into an event the real handler accepts, and the pieces
agree with the code (handler path, environment variables, error names, roles)."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml
from cli_process import run_in_project, run_python
from pipes_template import render, render_batch
from queued_events import pipe_reserved_variables, sns_notification, sqs_record
from state_machine_harness import template_definition
from template_helpers import iam_actions, iam_statements
from works_helpers import fill_pool, work

from idminter_pipeline.aws_lambda.events import parse_event
from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.works.pipeline import MAX_BATCH_SIZE
from idminter_pipeline.works.stores import IdsScope, SqliteWorksStore

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
TEMPLATES = sorted((DEPLOY / "aws").glob("*.yaml"))
MINTER = DEPLOY / "aws" / "minter.yaml"
BIN = Path(sys.executable).parent
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
SAMPLE_FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:idminter-minter"


def _template(path: Path = MINTER) -> dict:
    return cfn_yaml.load(str(path))


def _resources(path: Path = MINTER) -> dict:
    return _template(path)["Resources"]


def _cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "cfn-lint"), *map(str, paths)], capture_output=True, text=True, check=False
    )


def test_every_cloudformation_template_is_linted():
    """No template escapes the lint: every YAML file under deploy/ that is one is in the list."""
    templates = {
        path
        for path in DEPLOY.rglob("*.yaml")
        if "AWSTemplateFormatVersion" in path.read_text(encoding="utf-8")
    }
    assert templates == set(TEMPLATES)
    assert {p.name for p in TEMPLATES} == {"minter.yaml", "dagster-ecs.yaml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(template):
    result = _cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""  # not even a warning


def test_cfn_lint_catches_a_broken_template(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        MINTER.read_text(encoding="utf-8").replace("Type: Task\n", "Type: Tasks\n"),
        encoding="utf-8",
    )
    result = _cfn_lint(broken)
    assert result.returncode != 0 and "E3601" in result.stdout


# --- The state machine ---------------------------------------------------------------------------


def _state_machine() -> dict:
    """The definition as Step Functions receives it, substitutions applied."""
    properties = _resources()["MinterStateMachine"]["Properties"]
    text = json.dumps(properties["Definition"])
    substitutions = {"MinterFunctionArn": SAMPLE_FUNCTION_ARN}
    assert set(properties["DefinitionSubstitutions"]) == set(substitutions)
    for name, value in substitutions.items():
        text = text.replace(f"${{{name}}}", value)
    assert "${" not in text
    return json.loads(text)


def _validators(definition_file: Path) -> dict[str, subprocess.CompletedProcess]:
    assert ASL_VALIDATOR.exists(), "asl-validator is missing: `make test` installs it (npm ci)"
    return {
        "asl-validator": subprocess.run(
            [str(ASL_VALIDATOR), "--json-path", str(definition_file)],
            capture_output=True,
            text=True,
            check=False,
        ),
        "statelint": subprocess.run(
            [str(BIN / "statelint"), str(definition_file)],
            capture_output=True,
            text=True,
            check=False,
        ),
    }


def test_state_machine_passes_both_asl_validators(tmp_path):
    definition = tmp_path / "state-machine.json"
    definition.write_text(json.dumps(_state_machine()), encoding="utf-8")
    for name, result in _validators(definition).items():
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_the_window_state_machine_passes_the_asl_validator(tmp_path):
    substitutions = {
        "FindWorkFunctionArn": SAMPLE_FUNCTION_ARN,
        "MinterFunctionArn": SAMPLE_FUNCTION_ARN,
        "WindowLocksTable": "locks",
    }
    definition = tmp_path / "window.json"
    definition.write_text(
        json.dumps(template_definition("WindowStateMachine", substitutions)), encoding="utf-8"
    )
    result = _validators(definition)["asl-validator"]
    assert result.returncode == 0, result.stdout + result.stderr
    # statelint predates the Distributed Map's ItemReader.ReaderConfig.InputType, which Step
    # Functions requires for a JSON manifest: it refuses that field and nothing else.
    statelint = _validators(definition)["statelint"]
    assert "ReaderConfig" in statelint.stdout and "One error" in statelint.stdout


def test_the_asl_validators_catch_a_broken_state_machine(tmp_path):
    machine = _state_machine()
    machine["States"]["MintBatches"]["ItemsPath"] = "batches"  # not a path
    definition = tmp_path / "broken.json"
    definition.write_text(json.dumps(machine), encoding="utf-8")
    for name, result in _validators(definition).items():
        assert result.returncode != 0, name
        assert "ItemsPath" in result.stdout + result.stderr, name


def test_the_map_sends_each_batch_as_a_request_the_handler_accepts():
    mapped = _state_machine()["States"]["MintBatches"]
    assert mapped["Type"] == "Map" and mapped["ItemsPath"] == "$.batches"
    execution_input = {"jobId": "2026-01-29T10:30:00Z", "batches": [["sierra-system-number/b1"]]}
    # ItemSelector: "$$.Map.Item.Value" is the batch, "$$.Map.Item.Index" its position, "$.x"
    # a field of the Map's input (to which CountBatches added batchCount).
    state = {**execution_input, "batchCount": 1}
    context = {"$$.Map.Item.Value": execution_input["batches"][0], "$$.Map.Item.Index": 0}

    def select(template: dict) -> dict:
        return {
            key.removesuffix(".$"): (
                select(path)
                if isinstance(path, dict)
                else context[path]
                if path in context
                else state[path.removeprefix("$.")]
            )
            for key, path in template.items()
        }

    item = select(mapped["ItemSelector"])
    assert item["batch"] == {"index": 0, "count": 1}
    assert parse_event(item) == (IdsScope(("sierra-system-number/b1",)), "2026-01-29T10:30:00Z")
    task = mapped["ItemProcessor"]["States"]["MintBatch"]
    assert task["Parameters"] == {"FunctionName": SAMPLE_FUNCTION_ARN, "Payload.$": "$"}


def test_the_pool_is_retried_for_minutes():
    """Which names are retried or caught is tests/test_state_machine_errors.py's, by name."""
    task = _state_machine()["States"]["MintBatches"]["ItemProcessor"]["States"]["MintBatch"]
    (pool_rule,) = [r for r in task["Retry"] if "PoolExhaustedError" in r["ErrorEquals"]]
    # Long enough for the pool's replenishment to run: minutes, not seconds.
    assert pool_rule["IntervalSeconds"] >= 30 and pool_rule["MaxAttempts"] >= 3


# --- Least privilege and wiring ----------------------------------------------------------------


def test_the_minter_role_reaches_the_registry_secret_the_index_key_and_the_topic_only():
    statements = iam_statements(_resources()["MinterRole"])
    by_action = {action: s["Resource"] for s in statements for action in iam_actions(s)}
    assert by_action["secretsmanager:GetSecretValue"] == [
        {"Ref": "RegistrySecretArn"},
        {"Ref": "ElasticsearchApiKeySecretArn"},
    ]
    assert by_action["sns:Publish"] == {"Ref": "DownstreamTopicArn"}
    assert by_action["logs:PutLogEvents"] == {"Fn::GetAtt": ["MinterLogGroup", "Arn"]}
    unscoped = {a for s in statements if s["Resource"] == "*" for a in iam_actions(s)}
    # Only the VPC network-interface actions, which take no resource, are unscoped.
    assert unscoped == {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
    assert not any("*" in a for s in statements for a in iam_actions(s))


def test_the_pipe_role_reads_the_queue_and_invokes_the_minter_only():
    statements = iam_statements(_resources()["PipeRole"])
    assert {(a, json.dumps(s["Resource"])) for s in statements for a in iam_actions(s)} == {
        ("sqs:ReceiveMessage", '{"Fn::GetAtt": ["InputQueue", "Arn"]}'),
        ("sqs:DeleteMessage", '{"Fn::GetAtt": ["InputQueue", "Arn"]}'),
        ("sqs:GetQueueAttributes", '{"Fn::GetAtt": ["InputQueue", "Arn"]}'),
        ("lambda:InvokeFunction", '{"Fn::GetAtt": ["MinterFunction", "Arn"]}'),
    }


def test_the_queue_has_a_dead_letter_queue_and_outlives_an_invocation():
    resources = _resources()
    queue = resources["InputQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["InputDeadLetterQueue", "Arn"]
    }
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 3
    assert queue["VisibilityTimeout"] >= 6 * resources["MinterFunction"]["Properties"]["Timeout"]
    batch_size = _template()["Parameters"]["PipeBatchSize"]
    # One invocation's records are minted in one registry transaction up to this size.
    assert batch_size["MaxValue"] <= MAX_BATCH_SIZE


def test_the_minter_environment_names_variables_the_code_reads():
    variables = _resources()["MinterFunction"]["Properties"]["Environment"]["Variables"]
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "idminter_pipeline").rglob("*.py")
    )
    for name in variables:
        assert f'"{name}"' in sources, name


# --- The Pipe's input template ------------------------------------------------------------------


def _input_template() -> str:
    return _resources()["LegacyPipe"]["Properties"]["TargetParameters"]["InputTemplate"]


def test_the_input_template_renders_an_sqs_record_as_a_step_functions_request():
    record = sqs_record("m-1", sns_notification("Work[sierra-system-number/b1161044x]"))
    assert render(_input_template(), record, pipe_reserved_variables()) == {
        "messageId": "m-1",
        "sourceIdentifiers": ["Work[sierra-system-number/b1161044x]"],
        "jobId": "idminter-legacy",
    }


def test_a_rendered_pipe_batch_is_minted_by_the_real_handler(
    registry_env, connect_registry, tmp_path, monkeypatch
):
    monkeypatch.setenv("WORKS_STORE_PATH", str(tmp_path / "works.sqlite3"))
    monkeypatch.setenv("IDMINTER_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    monkeypatch.delenv("IDMINTER_DOWNSTREAM_SNS_TOPIC_ARN", raising=False)
    fill_pool(connect_registry, 1_000)
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        store.put_source([work("sierra-system-number", "b1"), work("mets", "m2")])
    records = [
        sqs_record("m-1", sns_notification("Work[sierra-system-number/b1]")),
        sqs_record("m-2", sns_notification("mets/m2")),
        sqs_record("m-3", sns_notification("mets/not-in-the-index")),
    ]
    event = render_batch(_input_template(), records, pipe_reserved_variables())
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m-3"}]}
    with SqliteWorksStore(tmp_path / "works.sqlite3") as store:
        assert store.count_identified() == 2


# --- Images -----------------------------------------------------------------------------------


def _dockerfile_cmd(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    commands = [line for line in lines if line.startswith("CMD")]
    assert len(commands) == 1
    return json.loads(commands[0].removeprefix("CMD").strip())


def _copied_sources(path: Path) -> list[str]:
    sources = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY"):
            sources.extend(line.split()[1:-1])
    return sources


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "lambda/Dockerfile"])
def test_images_copy_files_that_exist(dockerfile):
    sources = _copied_sources(DEPLOY / dockerfile)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source


def _image_commands() -> list[str]:
    """The image's own handler, and each function's command over it (same image)."""
    (handler_path,) = _dockerfile_cmd(DEPLOY / "lambda" / "Dockerfile")
    overrides = [
        command
        for resource in _resources().values()
        # (a Fn::ForEach of the language extensions is a list, not a resource)
        if isinstance(resource, dict) and resource["Type"] == "AWS::Lambda::Function"
        for command in resource["Properties"].get("ImageConfig", {}).get("Command", [])
    ]
    return [handler_path, *overrides]


def test_every_function_of_the_image_has_its_own_command():
    assert _image_commands() == [
        "idminter_pipeline.aws_lambda.handler.handler",
        "idminter_pipeline.aws_lambda.handler.find_work",
    ]


@pytest.mark.parametrize("handler_path", _image_commands())
def test_the_lambda_image_names_a_handler_that_imports(handler_path):
    dockerfile = DEPLOY / "lambda" / "Dockerfile"
    assert re.search(r"public\.ecr\.aws/lambda/python:3\.11\b", dockerfile.read_text())
    module, _, function = handler_path.rpartition(".")
    # In a fresh interpreter, as the Lambda runtime loads it: the module imports on its own.
    probe = run_python(
        f"import inspect, {module} as m; f = m.{function}; "
        "print(list(inspect.signature(f).parameters))"
    )
    assert probe.returncode == 0, probe.stderr
    assert ast.literal_eval(probe.stdout.strip()) == ["event", "context"]


def test_the_dagster_services_agree_with_the_instance_and_workspace_files():
    resources = _resources(DEPLOY / "aws" / "dagster-ecs.yaml")
    workspace = cfn_yaml.load(str(DEPLOY / "workspace.yaml"))
    grpc = workspace["load_from"][0]["grpc_server"]
    aliases = resources["CodeLocationService"]["Properties"]["ServiceConnectConfiguration"][
        "Services"
    ][0]["ClientAliases"]
    assert aliases == [{"DnsName": grpc["host"], "Port": grpc["port"]}]
    instance = (DEPLOY / "dagster.yaml").read_text(encoding="utf-8")
    needed = set(re.findall(r"env: (\w+)", instance))
    assert needed >= {"DAGSTER_MYSQL_HOST", "DAGSTER_MYSQL_PASSWORD", "DAGSTER_COMPUTE_LOG_BUCKET"}
    for task in ("WebserverTask", "DaemonTask"):
        container = resources[task]["Properties"]["ContainerDefinitions"][0]
        given = {e["Name"] for e in container["Environment"]} | {
            s["Name"] for s in container["Secrets"]
        }
        assert needed <= given, (task, needed - given)
        assert "/opt/dagster/dagster_home/workspace.yaml" in container["Command"]
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "ENV DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile


def test_integration_target_without_a_docker_engine_says_so_in_one_line(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"  # no engine answers there
    result = run_in_project(
        ["make", "--no-print-directory", "test-integration"], env=env, timeout=60
    )
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert "make test-integration needs a Docker engine" in output
