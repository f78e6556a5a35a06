"""Every AWS API the deployed code calls has a route in its template, and the registry admits
both the Dagster tasks (deploy/aws/dagster-ecs.yaml) and the Lambda functions
(deploy/aws/minter.yaml).

The clients are found, not listed: every `boto3.client(...)` / `boto3.resource(...)` in the
package and in the dagster-aws modules that deploy/dagster.yaml configures (the ECS run launcher,
the S3 compute log manager), each naming its service as a string (a test keeps it so); plus what
ECS itself calls for a task (image pulls from ECR, whose layers come from S3; the awslogs
driver). The Lambda's clients are those of the modules its handler imports, followed through the
package (imports inside functions too). With
`CreateVpcEndpoints` each must have its endpoint.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import yaml
from cfnlint.decode import cfn_yaml

import idminter_pipeline

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "aws" / "dagster-ecs.yaml"
MINTER_TEMPLATE = ROOT / "deploy" / "aws" / "minter.yaml"
PACKAGE = Path(idminter_pipeline.__file__).parent
CLIENT = re.compile(r"\b(?:client|resource)\(\s*[\"']([a-z0-9-]+)[\"']")
# boto3's service names whose VPC endpoint is named otherwise.
ENDPOINT_NAME = {"cloudwatch": "monitoring", "stepfunctions": "states", "ecr": "ecr.api"}
# What ECS and the awslogs driver call for every Fargate task from a private ECR image.
TASK_PLATFORM = {"ecr.api", "ecr.dkr", "s3", "logs"}
# Created by the Lambda alone, which deploy/aws/minter.yaml deploys, not these tasks.
LAMBDA_ONLY = PACKAGE / "aws_lambda"
# Both functions' image command points into this module (minter.yaml's ImageConfig).
LAMBDA_HANDLER = "idminter_pipeline.aws_lambda.handler"


def clients_in(paths: list[Path]) -> set[str]:
    return {name for path in paths for name in CLIENT.findall(path.read_text(encoding="utf-8"))}


def package_clients() -> set[str]:
    return clients_in(
        [path for path in PACKAGE.rglob("*.py") if not path.is_relative_to(LAMBDA_ONLY)]
    )


def dagster_instance_files() -> list[Path]:
    """The modules of the dagster-aws classes deploy/dagster.yaml configures."""
    instance = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    classes = [
        getattr(importlib.import_module(instance[section]["module"]), instance[section]["class"])
        for section in ("run_launcher", "compute_logs")
        if instance.get(section, {}).get("module", "").startswith("dagster_aws")
    ]
    assert len(classes) == 2, classes
    return [Path(inspect.getfile(cls)) for cls in classes]


def dagster_instance_clients() -> set[str]:
    return clients_in(dagster_instance_files())


def client_calls(path: Path) -> list[ast.Call]:
    """Every `<anything>.client(...)` / `.resource(...)` call with arguments in a file: boto3's,
    a session's, whatever the receiver (a method of the same name without arguments, such as
    an alert channel's `client()`, is not one)."""
    return [
        node
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"client", "resource"}
        and (node.args or node.keywords)
    ]


def module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    package = PACKAGE.joinpath(*parts, "__init__.py")
    if package.is_file():
        return package
    module = PACKAGE.joinpath(*parts[:-1], f"{parts[-1]}.py") if parts else None
    return module if module is not None and module.is_file() else None


def imported_modules(path: Path) -> set[str]:
    """The package's modules a file imports anywhere in it (and their parent packages)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    package = PACKAGE.name
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == package:
            found.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return {name for name in found if module_file(name)}


def lambda_modules() -> list[Path]:
    seen: set[str] = set()
    pending = {LAMBDA_HANDLER}
    while pending:
        name = pending.pop()
        seen.add(name)
        pending |= imported_modules(module_file(name)) - seen
    return [module_file(name) for name in seen]


def lambda_clients() -> set[str]:
    return clients_in(lambda_modules())


def endpoint_services(template: Path = TEMPLATE) -> set[str]:
    resources = cfn_yaml.load(str(template))["Resources"]
    services = set()
    for resource in resources.values():
        # Fn::ForEach blocks (lists) make no endpoints.
        if isinstance(resource, dict) and resource["Type"] == "AWS::EC2::VPCEndpoint":
            assert resource.get("Condition") == "CreatesVpcEndpoints"
            name = resource["Properties"]["ServiceName"]["Fn::Sub"]
            services.add(name.removeprefix("com.amazonaws.${AWS::Region}."))
    return services


def test_the_code_and_dagster_create_the_clients_this_test_knows_of():
    """The scan finds what is there (so an empty scan cannot pass the next test)."""
    assert {"secretsmanager", "sns"} <= package_clients()
    assert {"ecs", "ec2", "secretsmanager", "logs", "s3"} <= dagster_instance_clients()


def test_every_client_names_its_service_where_the_scan_reads_it():
    """A client whose service is a variable or a keyword would hide from the scan (and from the
    endpoint checks below): each names it as a string, first."""
    files = [*PACKAGE.rglob("*.py"), *dagster_instance_files()]
    hidden = []
    calls = 0
    for path in files:
        for call in client_calls(path):
            calls += 1
            service = call.args[0] if call.args else None
            if not (isinstance(service, ast.Constant) and isinstance(service.value, str)):
                hidden.append(f"{path.name}:{call.lineno}: {ast.unparse(call)}")
    assert calls >= 10, calls  # the package's and dagster-aws's own clients were seen
    assert not hidden, hidden


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


def test_the_lambda_creates_the_clients_this_test_knows_of():
    """The import walk reaches the registry, the downstream topic and the run data (so an empty
    walk cannot pass the next test)."""
    modules = {path.relative_to(PACKAGE).as_posix() for path in lambda_modules()}
    assert {"registry/connection.py", "works/downstream.py", "aws_lambda/reports.py"} <= modules
    assert {"secretsmanager", "sns", "s3"} <= lambda_clients()


def test_every_aws_api_the_lambda_calls_has_an_endpoint():
    needed = {ENDPOINT_NAME.get(name, name) for name in lambda_clients()}
    missing = needed - endpoint_services(MINTER_TEMPLATE)
    assert not missing, f"no VPC endpoint in {MINTER_TEMPLATE.name} for: {sorted(missing)}"


def test_the_registry_admits_the_lambda_and_the_group_is_an_output():
    template = cfn_yaml.load(str(MINTER_TEMPLATE))
    resources = template["Resources"]
    lambda_group = {"Ref": "LambdaSecurityGroup"}
    rule = resources["RegistryIngressFromLambda"]["Properties"]
    assert rule["GroupId"] == {"Ref": "RegistrySecurityGroupId"}
    assert rule["SourceSecurityGroupId"] == lambda_group
    assert rule["FromPort"] == rule["ToPort"] == {"Ref": "RegistryPort"}
    assert template["Outputs"]["LambdaSecurityGroupId"]["Value"] == lambda_group
    functions = [
        resource
        for resource in resources.values()
        if isinstance(resource, dict) and resource["Type"] == "AWS::Lambda::Function"
    ]
    assert len(functions) == 2
    for function in functions:
        vpc = function["Properties"]["VpcConfig"]
        assert vpc == {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": [lambda_group]}
    ingress = resources["EndpointSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in ingress] == [(443, lambda_group)]
    shared = resources["EndpointIngressFromLambda"]["Properties"]
    assert shared["GroupId"] == {"Ref": "EndpointSecurityGroupId"}
    assert shared["SourceSecurityGroupId"] == lambda_group
    assert "EndpointSecurityGroupId" in cfn_yaml.load(str(TEMPLATE))["Outputs"]
