"""A deploy rehearsal of Dagster on ECS: deploy/aws/dagster-ecs.yaml's three containers (code
location, webserver, daemon) started here, each with exactly the environment its task definition
declares (Environment, and Secrets read from Secrets Manager as ECS reads them), the image's ENV
(deploy/Dockerfile) and the container's own command.

What stands in for AWS, and nothing else:
- Secrets Manager, SNS, SQS and S3: a moto server (AWS_ENDPOINT_URL and throwaway credentials in
  place of the task role's; AWS_REGION/AWS_DEFAULT_REGION as Fargate sets them).
- The RDS storage instance: a scratch database on the project's MySQL (DagsterStorage's endpoint
  address and port); the registry: the test session's registry there. The rehearsal runs under
  `make test-mysql` (in `.ci/run`); `make test`, on MariaDB, skips it.
- Service Connect's name and the fixed ports: 127.0.0.1 and free ports (the workspace file and
  the commands' -h/-p), paths under /opt: a temporary directory.
- ECS run tasks: the instance's EcsRunLauncher is replaced by tests/ecs_rehearsal.py's launcher,
  which starts `dagster api execute_run` with the environment ECS would give the run task.
Plus PATH and HOME for the processes to start at all, and PYTHONPATH: this source tree first (the
image installs it; the venv's own install may be another checkout's) and tests/ for that launcher.

The rehearsal launches a run through the webserver (GraphQL) and sees the pool sensor's alert
reach the alert topic (an SQS subscriber), its metric line in the code location's output, and the
compute logs in the bucket. A container missing a variable fails it: the second test takes
DAGSTER_MYSQL_HOST away from the code location.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import mysql.connector
import pytest
import yaml
from cfnlint.decode import cfn_yaml
from dagster_graphql import DagsterGraphQLClient
from dagster_helpers import end_process_groups
from db_helpers import (
    create_database,
    create_database_statement,
    drop_database,
    drop_database_statement,
    free_port,
    mysql_under_test,
    server_admin_connection,
)
from ecs_rehearsal import TemplateValues, container_definitions, task_environment
from rotation_helpers import RotatingAccount, rotating_account
from sns_helpers import SubscribedTopic, subscribed_topic

from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.defs.pool.metrics import FREE_IDS_METRIC
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "aws" / "dagster-ecs.yaml"
BIN = Path(sys.executable).parent
STACK = "rehearsal"
LOCATION = "idminter_pipeline"
SENSOR = "pool_size_sensor"
IMAGE_PATHS = {"/opt/idminter/sql": ROOT / "sql"}  # the rest of /opt maps into tmp
POOL = {"PoolTargetFree": 2_000, "PoolLowWatermark": 1_000, "PoolCriticalWatermark": 200}
# A bound on each wait, not a timing: `make test` runs this beside three other workers on two
# cores, where a run the daemon launches can wait minutes for its process to start.
STARTUP_SECONDS = 360
FAILURE_ALERT_INTERVAL_SECONDS = 2

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")


def _image_environment(home: Path, workdir: Path) -> dict[str, str]:
    """The ENV lines of deploy/Dockerfile, `${ARG}` filled with the ARG's default as a build
    without --build-arg fills it, with their paths moved here."""
    build_args: dict[str, str] = {}
    environment = {}
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("ARG "):
            name, _, default = line.removeprefix("ARG ").partition("=")
            build_args[name] = default
        elif line.startswith("ENV "):
            name, _, value = line.removeprefix("ENV ").partition("=")
            for arg, default in build_args.items():
                value = value.replace("${" + arg + "}", default)
            environment[name] = _local_path(value, home, workdir)
    return environment


def _local_path(value: str, home: Path, workdir: Path) -> str:
    for prefix, local in IMAGE_PATHS.items():
        if value.startswith(prefix):
            return str(local) + value.removeprefix(prefix)
    value = value.replace("/opt/dagster/dagster_home", str(home))
    return value.replace("/opt/idminter", str(workdir))


def _image_command() -> list[str]:
    (line,) = [
        line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    ]
    return json.loads(line.removeprefix("CMD").strip())


@dataclass
class Stage:
    """What the stack would find in AWS, here: secrets, topic, bucket, storage database."""

    values: TemplateValues
    topic: SubscribedTopic
    storage: DatabaseSettings
    registry: DatabaseSettings
    bucket: str
    aws: dict[str, str]
    tmp: Path


@pytest.fixture
def stage(aws_env, registry, server_settings, tmp_path) -> Iterator[Stage]:
    if not mysql_under_test():
        # Dagster's storage is MySQL in production (dagster-mysql supports MySQL, not MariaDB),
        # and so is the registry: the deployment is rehearsed against the project's MySQL.
        pytest.skip("rehearsed against MySQL, by `make test-mysql`")
    storage = create_database(server_settings, "dagster_")
    secrets = boto3.client("secretsmanager")

    def secret(name: str, value: str) -> str:
        return secrets.create_secret(Name=f"{name}-{tmp_path.name}", SecretString=value)["ARN"]

    registry_secret = secret(
        "registry", json.dumps({"username": registry.username, "password": registry.password})
    )
    storage_secret = secret(
        "dagster-storage",
        json.dumps({"username": storage.username, "password": storage.password}),
    )
    # Locally one account plays both: the runtime and the migration account.
    migration_secret = secret(
        "registry-migration",
        json.dumps({"username": registry.username, "password": registry.password}),
    )
    es_key = secret("es-api-key", "rehearsal-api-key")
    topic = subscribed_topic(f"alerts-{tmp_path.name}"[:80])
    bucket = f"compute-logs-{abs(hash(tmp_path.name)) % 10**8}"
    boto3.client("s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    template = cfn_yaml.load(str(TEMPLATE))
    parameters = {
        name: spec["Default"] for name, spec in template["Parameters"].items() if "Default" in spec
    }
    parameters.update(
        {
            "ImageUri": "idminter-dagster:rehearsal",
            "RegistryHost": registry.host,
            "RegistryPort": registry.port,
            "RegistryDatabase": registry.database,
            "RegistrySecretArn": registry_secret,
            "RegistryMigrationSecretArn": migration_secret,
            "RegistrySecurityGroupId": "sg-0123456789abcdef0",
            "ElasticsearchUrl": "http://127.0.0.1:9",  # nothing listens: no run here reads it
            "ElasticsearchApiKeySecretArn": es_key,
            "PipelineDate": "2026-01-01",
            "FailureAlertIntervalSeconds": FAILURE_ALERT_INTERVAL_SECONDS,
            "AlertsTopicArn": topic.topic_arn,
            "StorageDatabaseName": storage.database,
            **POOL,
        }
    )
    role = "arn:aws:iam::123456789012:role/rehearsal-{}".format
    values = TemplateValues(
        parameters=parameters,
        resources={
            "StorageSecret": storage_secret,
            "ComputeLogBucket": bucket,
            "LogGroup": f"/ecs/{STACK}",
        },
        attributes={
            "DagsterStorage.Endpoint.Address": storage.host,
            "DagsterStorage.Endpoint.Port": str(storage.port),
            "RunRole.Arn": role("run"),
            "ExecutionRole.Arn": role("execution"),
        },
        stack_name=STACK,
    )
    aws = {
        name: os.environ[name]
        for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    aws["AWS_REGION"] = aws["AWS_DEFAULT_REGION"] = os.environ["AWS_DEFAULT_REGION"]
    yield Stage(values, topic, storage, registry, bucket, aws, tmp_path)
    drop_database(storage)


@dataclass
class Deployment:
    """The three Dagster processes, started from the task definitions."""

    stage: Stage
    containers: dict[str, dict]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    webserver_port: int = 0

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"--- {name} (last {lines} lines) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.webserver_port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert "errors" not in body, body
        return body["data"]

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    pytest.fail(
                        f"{name} exited ({process.returncode}) while waiting for "
                        f"{what}\n{self.log_tail()}"
                    )
            try:
                result = probe()
            except (OSError, ValueError):  # not listening yet
                result = None
            if result:
                return result
            time.sleep(1)
        pytest.fail(f"timed out waiting for {what}\n{self.log_tail()}")


def _dagster_home(stage: Stage) -> tuple[Path, Path]:
    """DAGSTER_HOME as the image has it, with the run launcher and the code location's address
    replaced (see the module docstring)."""
    home = stage.tmp / "dagster_home"
    home.mkdir(exist_ok=True)
    workdir = stage.tmp / "workdir"
    workdir.mkdir(exist_ok=True)
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert instance["run_launcher"]["class"] == "EcsRunLauncher"
    instance["run_launcher"] = {
        "module": "ecs_rehearsal",
        "class": "RehearsalEcsRunLauncher",
        "config": {"log_dir": str(stage.tmp / "runs")},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    return home, workdir


def test_the_image_names_the_debian_release_whose_openssl_the_rehearsal_stands_in_for():
    (base,) = re.findall(r"^FROM (\S+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert base == "python:3.11-slim-trixie"


def _image_openssl() -> dict[str, str]:
    """The image's OpenSSL generation for the processes started here.

    The image's Debian (trixie, deploy/Dockerfile's FROM) has OpenSSL 3.5, and Dagster's MySQL
    storage connects through the MySQL connector's C extension, which needs 3.2 or later. On an
    older system (Debian 12 has 3.0) the extension does not load and the connector falls back to
    pure Python, which loads the system's CA store twice for every TLS connection: about 60 ms
    of CPU per connection, and dagster-mysql connects once per query. There the processes
    preload the OpenSSL 3.5 the connector ships, which then serves Python's ssl module too.
    """
    if ssl.OPENSSL_VERSION_INFO[:2] >= (3, 2):
        return {}
    vendored = Path(mysql.connector.__file__).parent.parent / "vendor"
    return {"LD_PRELOAD": f"{vendored / 'libcrypto.so.3'}:{vendored / 'libssl.so.3'}"}


# In the order a Dagster process loads them: ssl (and its OpenSSL) long before the connector.
PROCESS_CHECK = """
import ssl, idminter_pipeline, dagster_mysql, mysql.connector
print(idminter_pipeline.__file__, mysql.connector.HAVE_CEXT)
"""


def _command(container: dict, replacements: dict[str, str]) -> list[str]:
    command = container.get("Command") or _image_command()
    local = [replacements.get(arg, arg) for arg in command]
    local = [arg.replace("/opt/dagster/dagster_home", replacements["HOME"]) for arg in local]
    executable = BIN / local[0]
    assert executable.exists(), f"{local[0]} is not installed by the project"
    return [str(executable), *local[1:]]


def _healthy(
    container: dict, replacements: dict[str, str], environment: dict[str, str], cwd: Path
) -> bool:
    """The container's HealthCheck command, as ECS runs it inside the container."""
    kind, *command = container["HealthCheck"]["Command"]
    assert kind == "CMD", kind
    timeout = container["HealthCheck"].get("Timeout", 5)
    try:
        result = subprocess.run(
            _command({"Command": command}, replacements),
            env=environment,
            cwd=cwd,
            capture_output=True,
            check=False,
            timeout=timeout * 3,  # 2 shared cores: the command's own start is slow here
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


@contextmanager
def deployed(stage: Stage, drop: dict[str, str] | None = None) -> Iterator[Deployment]:
    """Start code location, webserver and daemon; `drop` takes {task: variable} away."""
    template = cfn_yaml.load(str(TEMPLATE))
    containers = container_definitions(template, stage.values)
    assert set(containers) == {"CodeLocationTask", "WebserverTask", "DaemonTask", "AdminTask"}
    del containers["AdminTask"]  # a one-off task, not a service: admin_command starts it
    home, workdir = _dagster_home(stage)
    grpc_port, web_port = free_port(), free_port()
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    # Service Connect's alias, as CodeLocationService declares it, becomes this machine.
    (alias,) = template["Resources"]["CodeLocationService"]["Properties"][
        "ServiceConnectConfiguration"
    ]["Services"][0]["ClientAliases"]
    assert (grpc["host"], grpc["port"]) == (alias["DnsName"], alias["Port"])
    grpc.update(host="127.0.0.1", port=grpc_port)
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    replacements = {
        "0.0.0.0": "127.0.0.1",
        str(alias["Port"]): str(grpc_port),
        "3000": str(web_port),
        "HOME": str(home),
    }
    plumbing = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(workdir),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}",
        **stage.aws,
        **_image_openssl(),
    }
    # The processes must run this checkout's code, not whatever the venv has installed, and
    # connect to MySQL as the image does: through the connector's C extension.
    imported, extension = subprocess.run(
        [str(BIN / "python"), "-c", PROCESS_CHECK],
        env=plumbing,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(imported).is_relative_to(ROOT), imported
    assert extension == "True", "the processes connect to MySQL without the C extension"
    deployment = Deployment(stage, containers, webserver_port=web_port)
    secrets = boto3.client("secretsmanager")
    try:
        # In the order CloudFormation starts the services (DependsOn), each once the one before
        # is stable: the webserver once the code location's own health check passes (it has
        # built the Dagster instance, creating the storage's tables, by then), the daemon once
        # the webserver has loaded the code location.
        environments: dict[str, dict[str, str]] = {}
        for task in ("CodeLocationTask", "WebserverTask", "DaemonTask"):
            if task == "WebserverTask":
                deployment.wait_for(
                    "the code location's health check",
                    lambda: _healthy(
                        containers["CodeLocationTask"],
                        replacements,
                        environments["CodeLocationTask"],
                        workdir,
                    ),
                    STARTUP_SECONDS,
                )
            if task == "DaemonTask":
                deployment.wait_for(
                    "the webserver to load the code location",
                    lambda: _location_loaded(deployment),
                    STARTUP_SECONDS,
                )
            container = containers[task]
            environment = {
                **plumbing,
                **_image_environment(home, workdir),
                **task_environment(container, secrets),
            }
            if drop and task in drop:
                del environment[drop[task]]
            environments[task] = environment
            log = stage.tmp / f"{container['Name']}.log"
            deployment.logs[container["Name"]] = log
            with log.open("w") as output:
                deployment.processes[container["Name"]] = subprocess.Popen(
                    _command(container, replacements),
                    env=environment,
                    cwd=workdir,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        yield deployment
    finally:
        # Each process leads its own process group, with what it started: the code server's
        # child, the runs the daemon launched. Ending the group ends all of them.
        end_process_groups(deployment.processes.values())


LOCATION_STATUS = """
query {
  workspaceOrError {
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } }
  }
}
"""


def _location_loaded(deployment: Deployment) -> bool:
    entries = deployment.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    return any(
        e["name"] == LOCATION
        and e["loadStatus"] == "LOADED"
        and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 5) { status error { message } } } }
  }
}
"""


def _first_sensor_tick(deployment: Deployment) -> dict:
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": "__repository__",
        "sensorName": SENSOR,
    }

    def probe() -> dict | None:
        data = deployment.graphql(SENSOR_TICKS, {"selector": selector})["sensorOrError"]
        if data["__typename"] != "Sensor":
            return None
        done = [t for t in data["sensorState"]["ticks"] if t["status"] != "STARTED"]
        return done[-1] if done else None

    return deployment.wait_for(f"the first tick of {SENSOR}", probe, STARTUP_SECONDS)


def _emf_documents(path: Path) -> list[dict]:
    return [
        json.loads(line)
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]


def _free_ids(registry: DatabaseSettings) -> int:
    conn = connect(registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM canonical_ids WHERE Status = 'free'")
            (count,) = cursor.fetchone()
        return count
    finally:
        conn.close()


@pytest.mark.slow(seconds=75)
def test_the_ecs_deployment_runs_here_as_its_task_definitions_declare(stage):
    assert _free_ids(stage.registry) == 0  # an empty pool: the sensor must page
    with deployed(stage) as deployment:
        tick = _first_sensor_tick(deployment)
        assert tick["status"] == "SUCCESS", f"{tick}\n{deployment.log_tail()}"

        # The sensor's alert reached the alert topic's subscriber.
        envelopes = deployment.wait_for(
            "the pool alert on the alert topic", stage.topic.envelopes, 60
        )
        subjects = [e["Subject"] for e in envelopes]
        assert any(s.startswith("[CRITICAL]") and "pool" in s.lower() for s in subjects), subjects

        # The free count as a metric line, in the namespace the alarm reads.
        alarm = cfn_yaml.load(str(TEMPLATE))["Resources"]["PoolBelowCriticalWatermarkAlarm"]
        alarm_namespace = stage.values.evaluate(alarm["Properties"]["Namespace"])
        documents = deployment.wait_for(
            "the pool metric line",
            lambda: _emf_documents(deployment.logs["code-location"]),
            30,
        )
        assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == alarm_namespace
        assert documents[0][FREE_IDS_METRIC] == 0

        # A run launched through the webserver, executed with the run task's environment.
        client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.webserver_port)
        run_id = client.submit_job_execution(
            "pool_replenishment_job", repository_location_name=LOCATION
        )
        status = deployment.wait_for(
            f"run {run_id} to finish",
            lambda: (s := client.get_run_status(run_id).value) in {"SUCCESS", "FAILURE"} and s,
            STARTUP_SECONDS,
        )
        assert status == "SUCCESS", deployment.log_tail()
        assert _free_ids(stage.registry) >= POOL["PoolTargetFree"]
        # Its compute logs went to the bucket the task definitions name.
        listed = boto3.client("s3").list_objects_v2(
            Bucket=stage.bucket, Prefix="idminter/compute-logs/"
        )
        assert listed.get("KeyCount", 0) > 0

        # A minting run that fails on a step (the works store, Elasticsearch, is not reachable
        # here): final, as the deployed run retries decide. Dagster records that it will not
        # be retried, the daemon launches no re-execution, and it pages once.
        failing = client.submit_job_execution(
            "mint_works_by_id",
            repository_location_name=LOCATION,
            run_config={"source_identifiers": ["sierra-system-number/b1"]},
        )
        status = deployment.wait_for(
            f"run {failing} to finish",
            lambda: (s := client.get_run_status(failing).value) in {"SUCCESS", "FAILURE"} and s,
            STARTUP_SECONDS,
        )
        assert status == "FAILURE", deployment.log_tail()
        tags = deployment.wait_for(
            f"Dagster's retry decision on run {failing}",
            lambda: (t := _run_tags(deployment, failing)).get("dagster/will_retry") and t,
            60,
        )
        assert tags["dagster/will_retry"] == "false"

        def pages() -> list[dict]:  # each call reads what arrived since the last
            return [e for e in stage.topic.envelopes() if failing in e["Message"]]

        first = deployment.wait_for(f"the page for run {failing}", pages, 90)
        time.sleep(RETRY_SETTLE_SECONDS)  # a re-execution, or a second page, would be here by now
        assert _run_group(deployment, failing) == [failing]
        (page,) = first + pages()
        assert page["Subject"].startswith("[CRITICAL] Minting run failed: mint_works_by_id")

        # The code location served all of it without a warning (its name is the workspace's).
        served = deployment.logs["code-location"].read_text(errors="replace").splitlines()
        assert not [line for line in served if "WARNING" in line], "\n".join(served[:20])


RUN_TAGS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { tags { key value } } }
}
"""
RUN_GROUP = """
query Group($runId: ID!) {
  runGroupOrError(runId: $runId) { ... on RunGroup { runs { runId } } }
}
"""
# The run retry daemon looks for failed runs every few seconds, the failure sensors every
# FAILURE_ALERT_INTERVAL_SECONDS (the stack's parameter, set short here).
RETRY_SETTLE_SECONDS = 15


def _run_tags(deployment: Deployment, run_id: str) -> dict[str, str]:
    run = deployment.graphql(RUN_TAGS, {"runId": run_id})["runOrError"]
    return {tag["key"]: tag["value"] for tag in run.get("tags", [])}


def _run_group(deployment: Deployment, run_id: str) -> list[str]:
    group = deployment.graphql(RUN_GROUP, {"runId": run_id})["runGroupOrError"]
    return [run["runId"] for run in group.get("runs", [])]


def test_a_container_missing_a_variable_fails_the_rehearsal(stage):
    """The code location as the template first declared it: no DAGSTER_MYSQL_HOST. Its sensors
    build the Dagster instance there, so the pool sensor's tick fails, naming the variable."""
    with deployed(stage, drop={"CodeLocationTask": "DAGSTER_MYSQL_HOST"}) as deployment:
        tick = _first_sensor_tick(deployment)
    assert tick["status"] == "FAILURE"
    assert "DAGSTER_MYSQL_HOST" in tick["error"]["message"]
    assert stage.topic.envelopes() == []  # nobody was told about the empty pool


def test_the_rehearsal_covers_every_variable_the_instance_file_reads():
    """Each Dagster process gets every variable deploy/dagster.yaml reads."""
    template = cfn_yaml.load(str(TEMPLATE))
    needed = set(re.findall(r"env: (\w+)", (DEPLOY / "dagster.yaml").read_text()))
    for task in ("CodeLocationTask", "WebserverTask", "DaemonTask"):
        (container,) = template["Resources"][task]["Properties"]["ContainerDefinitions"]
        given = {e["Name"] for e in container["Environment"] if "Name" in e}
        given |= {s["Name"] for s in container["Secrets"]}
        assert needed <= given, (task, needed - given)
    assert shutil.which("dagster", path=str(BIN))


def admin_command(
    stage: Stage, command: list[str], overrides: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`aws ecs run-task` of the admin task with a command override, as a local process: exactly
    the environment its task definition declares (secrets as ECS injects them), the image's
    ENV lines, the overriding command, and the container override's `environment`."""
    template = cfn_yaml.load(str(TEMPLATE))
    container = container_definitions(template, stage.values)["AdminTask"]
    home, workdir = _dagster_home(stage)
    environment = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(workdir),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}",
        **stage.aws,
        **_image_environment(home, workdir),
        **task_environment(container, boto3.client("secretsmanager")),
        **(overrides or {}),
    }
    return subprocess.run(
        _command({"Command": command}, {"HOME": str(home)}),
        env=environment,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=STARTUP_SECONDS,
    )


def test_the_admin_task_runs_operator_commands_against_the_registry(stage):
    template = cfn_yaml.load(str(TEMPLATE))
    default = admin_command(
        stage,
        template["Resources"]["AdminTask"]["Properties"]["ContainerDefinitions"][0]["Command"],
    )
    assert default.returncode == 0, default.stderr
    status = admin_command(stage, ["idminter", "pool", "status"])
    assert status.returncode == 0, status.stderr
    free = dict(line.split(maxsplit=1) for line in status.stdout.splitlines() if line.strip())
    assert int(free["free"].replace(",", "")) == _free_ids(stage.registry) == 0
    # An assigned ID that no mapping uses: the report run in the admin task finds it.
    conn = connect(stage.registry)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('orphan22', 'assigned')"
            )
        conn.commit()
    finally:
        conn.close()
    reconcile = admin_command(stage, ["idminter", "reconcile"])
    assert reconcile.returncode == 0, reconcile.stderr
    (orphans,) = [
        line.split()
        for line in reconcile.stdout.splitlines()
        if line.strip().startswith("orphan_assigned_ids")
    ]
    assert orphans[:4] == ["orphan_assigned_ids", "warning", "found", "1"], reconcile.stdout


def test_the_admin_task_has_the_code_locations_settings():
    """What a command sees is what runs and sensors see: the same variables and secrets."""
    template = cfn_yaml.load(str(TEMPLATE))
    resources = template["Resources"]

    def names(task: str) -> set[str]:
        (container,) = resources[task]["Properties"]["ContainerDefinitions"]
        given = set()
        for entry in container["Environment"]:
            if "Name" in entry:
                given.add(entry["Name"])
            else:  # !If [condition, {Name: ...}, NoValue]
                given.add(entry["Fn::If"][1]["Name"])
        return given | {s["Name"] for s in container["Secrets"]}

    code_location_only = {"DAGSTER_CURRENT_IMAGE", "DAGSTER_CONTAINER_CONTEXT"}
    assert names("AdminTask") == names("CodeLocationTask") - code_location_only


@contextmanager
def _database_only_its_account_may_use(stage: Stage) -> Iterator[tuple[str, RotatingAccount]]:
    """A new database on the stage's server that only a new account may use, its secret in
    Secrets Manager and rotatable: (its name, the account). Dropped at the end."""
    database = stage.registry.with_database(f"rehearsal_admin_{uuid.uuid4().hex[:10]}")
    admin = server_admin_connection(stage.registry)
    try:
        with admin.cursor() as cursor:
            cursor.execute(create_database_statement(database.database))
        with rotating_account(database, boto3.client("secretsmanager")) as account:
            yield database.database, account
    finally:
        with admin.cursor() as cursor:
            cursor.execute(drop_database_statement(database))
        admin.close()


def test_the_admin_task_reaches_the_registry_through_its_secret_while_it_rotates(stage):
    """The admin task's commands connect with the secret its task definition names, never with
    anything else the machine offers: the registry here is a database only that secret's account
    may use. Its password rotates in the middle (`ALTER USER` on the server, the versions moved
    as Secrets Manager moves them) and each command still runs."""
    with _database_only_its_account_may_use(stage) as (name, account):
        apply_migrations(lambda: connect(account.settings))
        stage.values.parameters.update(RegistryDatabase=name, RegistrySecretArn=account.secret_arn)

        def runs(command: list[str]) -> str:
            result = admin_command(stage, command)
            assert result.returncode == 0, result.stderr
            return result.stdout

        assert "free" in runs(["idminter", "pool", "status"])
        token = account.start_rotation()  # only AWSPENDING holds the password now
        assert "free" in runs(["idminter", "pool", "status"])
        assert "orphan_assigned_ids" in runs(["idminter", "reconcile"])
        account.finish_rotation(token)
        assert "free" in runs(["idminter", "pool", "status"])


def test_the_admin_task_runs_migrations_with_the_migration_secret_as_an_override(stage):
    """The runbooks' migration commands: the admin task with `RDS_SECRET_NAME` overridden by the
    migration account's secret (aws-dagster.md, "Run a command against production"). Here the
    registry is a new database only that account may use: with the override `idminter db
    migrate` creates its schema; without it, the runtime account is refused."""
    with _database_only_its_account_may_use(stage) as (name, migration):
        stage.values.parameters.update(
            RegistryDatabase=name, RegistryMigrationSecretArn=migration.secret_arn
        )
        migrate = ["idminter", "db", "migrate"]
        refused = admin_command(stage, migrate)
        assert refused.returncode == 1
        assert "Access denied" in refused.stderr, refused.stderr
        override = {"RDS_SECRET_NAME": migration.secret_arn}
        migrated = admin_command(stage, migrate, override)
        assert migrated.returncode == 0, migrated.stderr
        status = admin_command(stage, ["idminter", "db", "status"], override)
        assert "no drift" in status.stdout, status.stdout
