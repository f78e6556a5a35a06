"""deploy/aws/dagster-ecs.yaml read against what it must guarantee the storage
password survives rotation, secrets are listed explicitly, the UI is behind sign-in, the alert
topic and the works schedule's switch reach the code, and the deployment doc lists every
parameter. The rehearsal (test_deploy_ecs_rehearsal.py) runs the same containers."""

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml
from dagster._core.instance.config import dagster_instance_config
from dagster_aws.ecs import EcsRunLauncher
from template_helpers import iam_actions, iam_statements

from idminter_pipeline.defs.alerts.resources import SNS_TOPIC_ENV

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "aws" / "dagster-ecs.yaml"
DOC = ROOT / "docs" / "deploy" / "aws-dagster.md"
TASKS = ("CodeLocationTask", "WebserverTask", "DaemonTask")


def _template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


def _container(template: dict, task: str) -> dict:
    (container,) = template["Resources"][task]["Properties"]["ContainerDefinitions"]
    return container


def _environment(container: dict) -> dict:
    return {e["Name"]: e["Value"] for e in container["Environment"] if "Name" in e}


def _container_context(template: dict) -> dict:
    """DAGSTER_CONTAINER_CONTEXT with sample values for its substitutions."""
    value = _environment(_container(template, "CodeLocationTask"))["DAGSTER_CONTAINER_CONTEXT"]
    text = re.sub(r"\$\{[^}]+\}", "x", value["Fn::Sub"][0])
    return json.loads(text)


def test_the_storage_password_does_not_rotate_under_running_tasks():
    """ECS injects secrets once, at task start: the storage password must not change under a
    running task. It lives in a secret of the stack's own that nothing rotates."""
    resources = _template()["Resources"]
    storage = resources["DagsterStorage"]["Properties"]
    assert not storage.get("ManageMasterUserPassword")  # RDS would rotate it every 7 days
    assert "StorageSecret" in storage["MasterUserPassword"]["Fn::Sub"]
    assert resources["StorageSecret"]["Type"] == "AWS::SecretsManager::Secret"
    generated = resources["StorageSecret"]["Properties"]["GenerateSecretString"]
    # The secret's username is the instance's (a literal: changing it would replace the instance).
    assert json.loads(generated["SecretStringTemplate"])["username"] == storage["MasterUsername"]
    rotations = [r for r in resources.values() if r["Type"].endswith("RotationSchedule")]
    assert rotations == []
    for task in TASKS:
        secrets = {s["Name"]: s["ValueFrom"] for s in _container(_template(), task)["Secrets"]}
        assert secrets["DAGSTER_MYSQL_PASSWORD"] == {"Fn::Sub": "${StorageSecret}:password::"}


def test_secrets_are_listed_explicitly_never_discovered(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the launcher builds its clients
    template = _template()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in iam_statements(resource):
            assert "secretsmanager:ListSecrets" not in iam_actions(statement), name
            if "secretsmanager:GetSecretValue" in iam_actions(statement):
                assert statement["Resource"] != "*", name
    config, _ = dagster_instance_config(str(ROOT / "deploy"))
    launcher_config = config["run_launcher"]["config"]
    assert "secrets_tag" in launcher_config and launcher_config["secrets_tag"] is None
    # As dagster_aws reads it: no tag, so no ListSecrets call when a run is launched.
    launcher = EcsRunLauncher.from_config_value(None, launcher_config)
    assert launcher.secrets_tags == []
    context = _container_context(template)
    assert [s["name"] for s in context["ecs"]["secrets"]] == ["ES_API_KEY"]


def test_the_ui_is_behind_oidc_sign_in_with_no_open_default():
    template = _template()
    parameters, resources = template["Parameters"], template["Resources"]
    for name in (
        "WebserverIngressCidr",
        "CertificateArn",
        "OidcIssuer",
        "OidcAuthorizationEndpoint",
        "OidcTokenEndpoint",
        "OidcUserInfoEndpoint",
        "OidcClientId",
        "OidcClientSecretArn",
    ):
        assert "Default" not in parameters[name], name
    listeners = [r for r in resources.values() if r["Type"].endswith("::Listener")]
    assert len(listeners) == 1
    listener = listeners[0]["Properties"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
    actions = sorted(listener["DefaultActions"], key=lambda a: a["Order"])
    assert [a["Type"] for a in actions] == ["authenticate-oidc", "forward"]
    assert actions[0]["AuthenticateOidcConfig"]["OnUnauthenticatedRequest"] == "authenticate"
    assert not [r for r in resources.values() if r["Type"].endswith("::ListenerRule")]
    ingress = resources["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "CidrIp": {"Ref": "WebserverIngressCidr"},
        }
    ]


def test_the_alert_topic_reaches_every_process_that_sends_alerts():
    template = _template()
    resources = template["Resources"]
    code_location = _environment(_container(template, "CodeLocationTask"))
    assert code_location[SNS_TOPIC_ENV] == {"Ref": "AlertsTopicArn"}
    run_env = dict(v.split("=", 1) for v in _container_context(template)["ecs"]["env_vars"])
    assert SNS_TOPIC_ENV in run_env
    for role in ("CodeLocationRole", "RunRole"):
        publish = [
            s["Resource"]
            for s in iam_statements(resources[role])
            if "sns:Publish" in iam_actions(s) and s["Resource"] == {"Ref": "AlertsTopicArn"}
        ]
        assert publish, role
    for role in ("WebserverRole", "DaemonRole", "ExecutionRole"):
        assert not [s for s in iam_statements(resources[role]) if "sns:Publish" in iam_actions(s)]


@pytest.mark.parametrize(
    ("parameter_name", "variable"),
    [
        ("WorksScheduleRunning", "IDMINTER_WORKS_SCHEDULE_RUNNING"),
        ("SweeperScheduleRunning", "IDMINTER_SWEEPER_SCHEDULE_RUNNING"),
    ],
)
def test_the_works_schedule_switches_are_parameters_the_code_reads(parameter_name, variable):
    template = _template()
    parameter = template["Parameters"][parameter_name]
    assert parameter["Default"] == "false" and set(parameter["AllowedValues"]) == {"true", "false"}
    code_location = _environment(_container(template, "CodeLocationTask"))
    assert code_location[variable] == {"Ref": parameter_name}
    schedules = (ROOT / "idminter_pipeline" / "defs" / "works" / "schedules.py").read_text()
    assert f'"{variable}"' in schedules


def test_every_variable_the_containers_set_is_read_by_the_code_or_dagster():
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "idminter_pipeline").rglob("*.py")
    )
    instance = (ROOT / "deploy" / "dagster.yaml").read_text()
    dagster_own = {"DAGSTER_CURRENT_IMAGE", "DAGSTER_CONTAINER_CONTEXT"}
    template = _template()
    for task in TASKS:
        container = _container(template, task)
        names = set(_environment(container)) | {s["Name"] for s in container["Secrets"]}
        for name in names - dagster_own:
            assert f'"{name}"' in sources or f"env: {name}" in instance, (task, name)


def test_the_deployment_doc_lists_every_parameter_with_its_default():
    doc = DOC.read_text(encoding="utf-8")
    rows = {
        match.group(1): match.group(2).strip()
        for match in re.finditer(r"^\| `(\w+)` \|([^|]*)\|", doc, flags=re.MULTILINE)
    }
    parameters = _template()["Parameters"]
    assert set(rows) == set(parameters)
    for name, spec in parameters.items():
        default = spec.get("Default")
        expected = "(required)" if default is None else f"`{default}`"
        if default == "":
            expected = '`""`'
        assert rows[name] == expected, (name, rows[name], expected)


def test_only_one_process_creates_the_storage_tables_on_the_first_start():
    """The code server builds the Dagster instance when it starts, and so does the webserver:
    on a new stack both would create the storage's tables at once, and the loser shows the code
    location as a load error ("Table 'runs' already exists", seen in the rehearsal). The webserver
    waits for the code location's service to be stable, which its health check makes mean "its
    gRPC server answers" (it built the instance before that); the daemon comes last."""
    template = _template()
    resources = template["Resources"]
    container = _container(template, "CodeLocationTask")
    (port,) = [m["ContainerPort"] for m in container["PortMappings"]]
    command = container["HealthCheck"]["Command"]
    assert command[:1] == ["CMD"] and command[1:5] == ["dagster", "api", "grpc-health-check", "-p"]
    assert command[5] == str(port)
    assert "CodeLocationService" in resources["WebserverService"]["DependsOn"]
    assert {"CodeLocationService", "WebserverService"} <= set(
        resources["DaemonService"]["DependsOn"]
    )


def test_only_the_admin_task_may_read_the_migration_accounts_secret():
    """The admin task runs the commands that need the migration account (its secret given as an
    override of RDS_SECRET_NAME); no other role may read that secret."""
    resources = _template()["Resources"]
    readers = {}
    for name, resource in resources.items():
        if not isinstance(resource, dict) or resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in iam_statements(resource) if "Policies" in resource["Properties"] else []:
            if "secretsmanager:GetSecretValue" in iam_actions(statement):
                targets = statement["Resource"]
                for target in targets if isinstance(targets, list) else [targets]:
                    readers.setdefault(json.dumps(target, sort_keys=True), set()).add(name)
    migration = json.dumps({"Ref": "RegistryMigrationSecretArn"})
    runtime = json.dumps({"Ref": "RegistrySecretArn"})
    assert readers[migration] == {"AdminRole"}
    assert "AdminRole" in readers[runtime]
