"""deploy/aws/minter.yaml's state machine (or another definition a test gives), executed by moto's
Step Functions interpreter, with its Lambda tasks served in-process by the real handlers (or
stand-ins a test gives), each function by its own.

- The definition is the template's own, `DefinitionSubstitutions` applied.
- moto's Lambda backend would run the function's image in Docker; `_invoke_lambda` is replaced
  by a call of the handler here, and an exception becomes the error payload Lambda's Python
  runtime makes of it (awslambdaric's `build_fault_result`: `errorType` is the class name).
- Retry waits are not slept: each wait the interpreter asks for is recorded and handed to the
  test's `on_retry` hook (which may, say, restart a stopped registry), so the template's own
  intervals stay as they are.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from awslambdaric.bootstrap import build_fault_result
from awslambdaric.lambda_runtime_marshaller import to_json
from cfnlint.decode import cfn_yaml
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from idminter_pipeline.aws_lambda import handler as lambda_handler

MINTER_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "aws" / "minter.yaml"
REGION = "eu-west-1"

Function = Callable[[Any], Any]


def state_machine_definition(function_arn: str) -> dict[str, Any]:
    """The `mint-works` state machine as Step Functions receives it, substitutions applied."""
    return template_definition("MinterStateMachine", {"MinterFunctionArn": function_arn})


def template_definition(resource: str, substitutions: dict[str, str]) -> dict[str, Any]:
    """The template's state machine `resource` as Step Functions receives it, with
    `substitutions` (all of its DefinitionSubstitutions) applied."""
    properties = cfn_yaml.load(str(MINTER_TEMPLATE))["Resources"][resource]["Properties"]
    assert set(properties["DefinitionSubstitutions"]) == set(substitutions)
    text = json.dumps(properties["Definition"])
    for name, value in substitutions.items():
        text = text.replace(f"${{{name}}}", value)
    assert "${" not in text
    return json.loads(text)


def lambda_response(function: Function, event: Any) -> tuple[str, bool]:
    """What Lambda's Python runtime answers: the result as JSON, or the error payload."""
    try:
        return to_json(function(event)), False
    except Exception:
        return to_json(build_fault_result(sys.exc_info(), None)), True


@dataclass
class Execution:
    status: str
    output: Any
    error: str | None
    cause: str | None
    invocations: int
    waits: list[float]


@dataclass
class MinterStateMachine:
    sfn: Any
    arn: str
    invocations: list[Any] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def execute(self, execution_input: dict[str, Any], *, timeout: float = 600) -> Execution:
        invoked, waited = len(self.invocations), len(self.waits)
        started = self.sfn.start_execution(
            stateMachineArn=self.arn,
            name=f"run-{uuid.uuid4().hex[:8]}",
            input=json.dumps(execution_input),
        )
        deadline = time.monotonic() + timeout
        while True:
            described = self.sfn.describe_execution(executionArn=started["executionArn"])
            if described["status"] != "RUNNING":
                break
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.05)
        output = described.get("output")
        return Execution(
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            invocations=len(self.invocations) - invoked,
            waits=self.waits[waited:],
        )


@contextmanager
def minter_state_machine(
    monkeypatch: pytest.MonkeyPatch,
    *,
    function: Function | None = None,
    on_retry: Callable[[int], None] | None = None,
) -> Iterator[MinterStateMachine]:
    """The template's state machine in moto, its task served by `function` (the real handler by
    default). `on_retry(n)` is called at the n-th retry wait (1-based)."""
    serve: Function = function or (lambda event: lambda_handler.handler(event, None))
    with state_machine(
        monkeypatch,
        {"idminter-minter": serve},
        lambda arns: state_machine_definition(arns["idminter-minter"]),
        on_retry=on_retry,
    ) as machine:
        yield machine


@contextmanager
def state_machine(
    monkeypatch: pytest.MonkeyPatch,
    functions: Mapping[str, Function],
    definition: Callable[[dict[str, str]], dict[str, Any]],
    *,
    on_retry: Callable[[int], None] | None = None,
) -> Iterator[MinterStateMachine]:
    """`definition(function ARNs by name)` in moto, each Lambda function of `functions` served
    in-process by its callable; S3 and the rest of AWS are moto's too."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName=f"minter-{uuid.uuid4().hex[:8]}",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        arns = {
            name: boto3.client("lambda", region_name=REGION).create_function(
                FunctionName=name,
                Role=role,
                PackageType="Image",
                Code={"ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/idminter:test"},
                Timeout=300,
            )["FunctionArn"]
            for name in functions
        }
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine_arn = sfn.create_state_machine(
            name="idminter-mint-works",
            definition=json.dumps(definition(arns)),
            roleArn=role,
        )["stateMachineArn"]
        machine = MinterStateMachine(sfn, machine_arn)

        def invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            machine.invocations.append(event)
            payload, errored = lambda_response(functions[function.function_name], event)
            return payload, errored, ""

        def retry_wait(seconds: float) -> None:
            machine.waits.append(seconds)
            if on_retry is not None:
                on_retry(len(machine.waits))

        monkeypatch.setattr(LambdaFunction, "_invoke_lambda", invoke)
        monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=retry_wait))
        yield machine
