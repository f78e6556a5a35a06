"""Every AWS API the Dagster tasks call has a route in deploy/aws/dagster-ecs.yaml, and the
registry admits the tasks.

The clients are found, not listed: every `boto3.client(...)` / `boto3.resource(...)` in the
package, and in the dagster-aws modules that deploy/dagster.yaml configures (the ECS run launcher,
the S3 compute log manager); plus what ECS itself calls for a task (image pulls from ECR, whose
layers come from S3; the awslogs driver). With `CreateVpcEndpoints` each must have its endpoint.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import yaml
from cfnlint.decode import cfn_yaml

import idminter_pipeline

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "aws" / "dagster-ecs.yaml"
PACKAGE = Path(idminter_pipeline.__file__).parent
CLIENT = re.compile(r"\b(?:client|resource)\(\s*[\"']([a-z0-9-]+)[\"']")
# boto3's service names whose VPC endpoint is named otherwise.
ENDPOINT_NAME = {"cloudwatch": "monitoring", "stepfunctions": "states", "ecr": "ecr.api"}
# What ECS and the awslogs driver call for every Fargate task from a private ECR image.
TASK_PLATFORM = {"ecr.api", "ecr.dkr", "s3", "logs"}
# Created by the Lambda alone, which deploy/aws/minter.yaml deploys, not these tasks.
LAMBDA_ONLY = PACKAGE / "aws_lambda"


def clients_in(paths: list[Path]) -> set[str]:
    return {name for path in paths for name in CLIENT.findall(path.read_text(encoding="utf-8"))}


def package_clients() -> set[str]:
    return clients_in(
        [path for path in PACKAGE.rglob("*.py") if not path.is_relative_to(LAMBDA_ONLY)]
    )


def dagster_instance_clients() -> set[str]:
    """The clients of the dagster-aws classes deploy/dagster.yaml configures."""
    instance = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    classes = [
        getattr(importlib.import_module(instance[section]["module"]), instance[section]["class"])
        for section in ("run_launcher", "compute_logs")
        if instance.get(section, {}).get("module", "").startswith("dagster_aws")
    ]
    assert len(classes) == 2, classes
    return clients_in([Path(inspect.getfile(cls)) for cls in classes])


def endpoint_services() -> set[str]:
    resources = cfn_yaml.load(str(TEMPLATE))["Resources"]
    services = set()
    for resource in resources.values():
        if resource["Type"] == "AWS::EC2::VPCEndpoint":
            assert resource.get("Condition") == "CreatesVpcEndpoints"
            name = resource["Properties"]["ServiceName"]["Fn::Sub"]
            services.add(name.removeprefix("com.amazonaws.${AWS::Region}."))
    return services


def test_the_code_and_dagster_create_the_clients_this_test_knows_of():
    """The scan finds what is there (so an empty scan cannot pass the next test)."""
    assert {"secretsmanager", "sns"} <= package_clients()
    assert {"ecs", "ec2", "secretsmanager", "logs", "s3"} <= dagster_instance_clients()


def test_every_aws_api_the_tasks_call_has_an_endpoint():
    called = package_clients() | dagster_instance_clients()
    needed = {ENDPOINT_NAME.get(name, name) for name in called} | TASK_PLATFORM
    missing = needed - endpoint_services()
    assert not missing, f"no VPC endpoint in {TEMPLATE.name} for: {sorted(missing)}"


def test_the_registry_admits_the_tasks_and_the_group_is_an_output():
    template = cfn_yaml.load(str(TEMPLATE))
    rule = template["Resources"]["RegistryIngressFromTasks"]["Properties"]
    assert rule["GroupId"] == {"Ref": "RegistrySecurityGroupId"}
    assert rule["SourceSecurityGroupId"] == {"Ref": "TaskSecurityGroup"}
    assert rule["FromPort"] == rule["ToPort"] == {"Ref": "RegistryPort"}
    assert template["Outputs"]["TaskSecurityGroupId"]["Value"] == {"Ref": "TaskSecurityGroup"}
    for service in ("CodeLocationService", "WebserverService", "DaemonService"):
        network = template["Resources"][service]["Properties"]["NetworkConfiguration"]
        assert network["AwsvpcConfiguration"]["SecurityGroups"] == [{"Ref": "TaskSecurityGroup"}]


def test_ecs_exec_reaches_the_code_location():
    template = cfn_yaml.load(str(TEMPLATE))
    resources = template["Resources"]
    assert resources["CodeLocationService"]["Properties"]["EnableExecuteCommand"] is True
    actions = {
        action
        for policy in resources["CodeLocationRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"ssmmessages:CreateControlChannel", "ssmmessages:OpenDataChannel"} <= actions
    assert "ssmmessages" in endpoint_services()
