"""Helpers for the deploy rehearsal of Dagster on ECS (tests/test_deploy_ecs_rehearsal.py).

- `TemplateValues` / `container_definitions`: deploy/aws/dagster-ecs.yaml's container definitions
  with CloudFormation's intrinsic functions evaluated (Ref, GetAtt, Sub, If, Equals, Not, Join),
  given values for the parameters and for what AWS would create (resource names and attributes).
  Anything the template names that the rehearsal did not supply fails with a KeyError, so a new
  reference is never silently dropped.
- `resolve_secret`: an ECS `valueFrom` (a Secrets Manager ARN, optionally `:json-key:stage:id`)
  read the way ECS reads it when a task starts.
- `RehearsalEcsRunLauncher`: stands in for dagster_aws's EcsRunLauncher in the daemon. It builds
  the run's environment as ECS would for the run task that EcsRunLauncher registers (the
  daemon's task definition, from which runs are derived with `use_current_ecs_task_config`, plus
  the code location's container context: its `env_vars` and `secrets`), and starts the command
  ECS would run, `dagster api execute_run`, as a local process instead of a Fargate task.

This module is imported by the daemon process too (through PYTHONPATH), so it imports no pytest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

NO_VALUE = object()


@dataclass
class TemplateValues:
    """What CloudFormation would know when it creates the stack."""

    parameters: dict[str, Any]
    resources: dict[str, str]  # logical ID -> what Ref returns
    attributes: dict[str, str]  # "LogicalId.Attribute" -> what GetAtt returns
    conditions: dict[str, Any] = field(default_factory=dict)
    stack_name: str = "rehearsal"
    region: str = "eu-west-1"
    account: str = "123456789012"

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.resources[name]

    def condition(self, name: str) -> bool:
        return bool(self.evaluate(self.conditions[name]))

    def evaluate(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.evaluate(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, Mapping):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, value)
        evaluated = ((k, self.evaluate(v)) for k, v in node.items())
        return {k: v for k, v in evaluated if v is not NO_VALUE}

    def _intrinsic(self, key: str, value: Any) -> Any:
        functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self.ref,
            "Fn::GetAtt": lambda v: self.attributes[".".join(v) if isinstance(v, list) else v],
            "Fn::Sub": self._sub,
            "Fn::If": lambda v: self.evaluate(v[1] if self.condition(v[0]) else v[2]),
            "Fn::Equals": lambda v: str(self.evaluate(v[0])) == str(self.evaluate(v[1])),
            "Fn::Not": lambda v: not self.evaluate(v[0]),
            "Fn::Join": lambda v: v[0].join(str(item) for item in self.evaluate(v[1])),
        }
        if key not in functions:
            raise KeyError(f"the rehearsal does not evaluate {key}")
        return functions[key](value)

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else value
        variables = {k: self.evaluate(v) for k, v in variables.items()}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.attributes[name])
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def container_definitions(template: Mapping, values: TemplateValues) -> dict[str, dict]:
    """Each task definition's (only) container, evaluated: {task logical ID: container}."""
    values.conditions = dict(template.get("Conditions", {}))
    containers = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            (container,) = resource["Properties"]["ContainerDefinitions"]
            containers[name] = values.evaluate(container)
    return containers


def resolve_secret(value_from: str, client: Any = None) -> str:
    """What ECS injects for a `valueFrom`: the secret string, or one key of its JSON."""
    client = client or boto3.client("secretsmanager")
    parts = value_from.split(":")
    arn, rest = ":".join(parts[:7]), parts[7:]
    json_key, stage, version = [*rest, "", "", ""][:3]
    request: dict[str, str] = {"SecretId": arn}
    if stage:
        request["VersionStage"] = stage
    if version:
        request["VersionId"] = version
    secret = client.get_secret_value(**request)["SecretString"]
    return str(json.loads(secret)[json_key]) if json_key else secret


def task_environment(container: Mapping, client: Any = None) -> dict[str, str]:
    """The variables a container definition gives its process: Environment, then Secrets."""
    environment = {e["Name"]: str(e["Value"]) for e in container.get("Environment", [])}
    for secret in container.get("Secrets", []):
        environment[secret["Name"]] = resolve_secret(secret["ValueFrom"], client)
    return environment


class RehearsalEcsRunLauncher(RunLauncher, ConfigurableClass):
    """EcsRunLauncher's run task, as a local process (see the module docstring)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, log_dir: str = ".") -> None:
        self._inst_data = inst_data
        self.log_dir = Path(log_dir)
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {"log_dir": str}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> RehearsalEcsRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def run_environment(self, container_context: Mapping[str, Any]) -> dict[str, str]:
        ecs = container_context.get("ecs", {})
        # The daemon's own environment is its task definition's: runs are derived from it.
        environment = dict(os.environ)
        for pair in ecs.get("env_vars", []):
            name, _, value = pair.partition("=")
            environment[name] = value
        for secret in ecs.get("secrets", []):
            environment[secret["name"]] = resolve_secret(secret["valueFrom"])
        return environment

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        assert origin is not None
        environment = self.run_environment(origin.repository_origin.container_context or {})
        environment["DAGSTER_RUN_JOB_NAME"] = run.job_name
        command = ExecuteRunArgs(
            job_origin=origin, run_id=run.run_id, instance_ref=self._instance.get_ref()
        ).get_command_args()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # In the daemon's process group, which the rehearsal ends at the end.
        with (self.log_dir / f"run-{run.run_id}.log").open("w") as log:
            subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        self._instance.report_engine_event(
            "Started the run's process as ECS would start its task (rehearsal)", run, cls=type(self)
        )

    def terminate(self, run_id: str) -> bool:
        return False
