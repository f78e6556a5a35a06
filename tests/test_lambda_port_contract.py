"""The reference port's Lambda contract, served by this project's handler: its
`StepFunctionMintingRequest` (camelCase or snake_case, a window given only its end, a job id
generated when absent), the partition refs of its find-work step whose request lives in S3, its
answer (`job_id`, `window`, `success_count`, `failure_count`, `report_s3_uri`) and its per-run
report; then a state machine shaped like the port's executed in moto against the real handler.
Against the real registry, the embedded store and moto's S3."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from state_machine_harness import state_machine
from works_helpers import embedded_store_holding, work

from idminter_pipeline.aws_lambda.events import parse_event
from idminter_pipeline.aws_lambda.handler import handler
from idminter_pipeline.aws_lambda.reports import read_object
from idminter_pipeline.core.errors import InvalidInputError, ObjectStorageError
from idminter_pipeline.works.stores import SqliteWorksStore, WindowScope

PIPELINE_DATE = "2026-07-30"
# Where the port's find-work step writes a window's partitions (models/find_work.py); each test
# adds a suffix to the bucket's name, as the moto server lives as long as the session.
PARTITION_BUCKET = "wellcomecollection-catalogue-graph"
PARTITION_PREFIX = (
    f"graph-prod/pipeline-{PIPELINE_DATE}/id_minter/find_work/windows/20260730T0945-20260730T1000"
)


@pytest.fixture
def port_env(registry_env, connect_registry, tmp_path, monkeypatch):
    works = [
        work("sierra-system-number", f"b{n}", indexed_at="2026-07-30T09:50:00Z") for n in (1, 2)
    ] + [work("sierra-system-number", f"c{n}") for n in range(5)]
    store_path = embedded_store_holding(monkeypatch, tmp_path, works, connect_registry, 200)
    monkeypatch.setenv("PIPELINE_DATE", PIPELINE_DATE)
    monkeypatch.setenv("S3_PREFIX", "prod")
    with SqliteWorksStore(store_path) as store:
        yield store


@dataclass(frozen=True)
class Buckets:
    reports: str
    partitions: str

    def create(self) -> None:
        for bucket in (self.reports, self.partitions):
            _s3().create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )

    def report_uri(self, job_id: str) -> str:
        return f"s3://{self.reports}/pipeline-{PIPELINE_DATE}/id_minter/prod/{job_id}.json"

    def put_partition(self, index: int, request: dict[str, Any]) -> dict[str, Any]:
        """As the port's find-work writes a partition (pydantic's model_dump_json, snake_case)."""
        key = f"{PARTITION_PREFIX}/partition-{index}.json"
        _s3().put_object(Bucket=self.partitions, Key=key, Body=json.dumps(request).encode())
        count = len(request["source_identifiers"])
        return {"s3_uri": f"s3://{self.partitions}/{key}", "count": count}


@pytest.fixture
def buckets(monkeypatch) -> Buckets:
    suffix = uuid.uuid4().hex[:8]
    names = Buckets(f"idminter-reports-{suffix}", f"{PARTITION_BUCKET}-{suffix}")
    monkeypatch.setenv("S3_BUCKET", names.reports)
    return names


def _s3():
    return boto3.client("s3", region_name="eu-west-1")


def _report(uri: str) -> dict[str, Any]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return json.loads(_s3().get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.parametrize(
    "window",
    [{"endTime": "2026-07-30T10:00:00Z"}, {"end_time": "2026-07-30T10:00:00Z"}],
    ids=["camelCase", "snake_case"],
)
def test_a_window_given_only_its_end_starts_15_minutes_before(window):
    scope, job_id = parse_event({"window": window, "jobId": "j"})
    assert scope == WindowScope("2026-07-30T09:45:00Z", "2026-07-30T10:00:00Z")
    assert job_id == "j"


def test_a_port_request_is_answered_in_the_ports_shape_and_reported_where_it_reports(
    port_env, aws_env, buckets, connect_registry
):
    buckets.create()
    answer = handler({"window": {"endTime": "2026-07-30T10:00:00Z"}}, None)

    job_id = answer["job_id"]
    assert re.fullmatch(r"\d{8}T\d{4}-[0-9a-f]{8}", job_id)  # generated: the request had none
    assert answer["window"] == {
        "start_time": "2026-07-30T09:45:00Z",
        "end_time": "2026-07-30T10:00:00Z",
    }
    assert (answer["success_count"], answer["failure_count"]) == (2, 0)
    uri = buckets.report_uri(job_id)
    assert answer["report_s3_uri"] == uri
    report = _report(uri)
    with connect_registry() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT CanonicalId FROM identifiers WHERE SourceId IN ('b1', 'b2') ORDER BY SourceId"
        )
        canonical_ids = [row[0] for row in cursor.fetchall()]
    assert report == {
        "window": answer["window"],
        "pipeline_date": PIPELINE_DATE,
        "job_id": job_id,
        "successful_ids": canonical_ids,
        "errors": [],
    }


def test_a_partition_ref_is_read_from_s3_minted_and_answered_small(port_env, aws_env, buckets):
    buckets.create()
    ids = [f"sierra-system-number/c{n}" for n in range(5)] + ["sierra-system-number/gone"]
    ref = buckets.put_partition(
        0, {"source_identifiers": ids, "window": None, "job_id": "base-p000"}
    )

    answer = handler(ref, None)

    assert answer == {
        "job_id": "base-p000",
        "window": None,
        "success_count": 5,
        "failure_count": 1,
        "report_s3_uri": buckets.report_uri("base-p000"),
    }
    (error,) = _report(answer["report_s3_uri"])["errors"]
    assert error["row_id"] == "Work[sierra-system-number/gone]" and error["stage"] == "read"


BAD_PARTITIONS = {
    "missing": (None, 1, "NoSuchKey"),
    "not JSON": (b"{not json", 1, "is not valid JSON"),
    "not a request": (b'["sierra-system-number/c1"]', 1, "must be a JSON object, got array"),
    "count mismatch": (
        b'{"source_identifiers": ["sierra-system-number/c1"], "job_id": "p"}',
        2,
        "its ref says 2 works but it lists 1",
    ),
    "empty": (b'{"source_identifiers": [], "job_id": "p"}', 0, "sourceIdentifiers is empty"),
}


@pytest.mark.parametrize("case", list(BAD_PARTITIONS))
def test_a_bad_partition_fails_alone_naming_its_object(port_env, aws_env, buckets, case):
    body, count, named = BAD_PARTITIONS[case]
    buckets.create()
    key = f"{PARTITION_PREFIX}/partition-7.json"
    if body is not None:
        _s3().put_object(Bucket=buckets.partitions, Key=key, Body=body)
    uri = f"s3://{buckets.partitions}/{key}"
    with pytest.raises(InvalidInputError) as raised:
        handler({"s3_uri": uri, "count": count}, None)
    assert uri in str(raised.value) and named in str(raised.value)
    assert port_env.count_identified() == 0


@pytest.mark.parametrize(
    ("code", "status", "raised"),
    [
        ("SlowDown", 503, ObjectStorageError),
        ("InternalError", 500, ObjectStorageError),
        ("NoSuchKey", 404, InvalidInputError),
        ("AccessDenied", 403, InvalidInputError),
    ],
)
def test_an_s3_failure_is_retried_only_when_retrying_can_help(code, status, raised):
    client = boto3.client(
        "s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    uri = "s3://bucket/find_work/full/j/partition-3.json"
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(raised) as error:
            read_object(uri, what=f"partition {uri}", client=client)
    assert type(error.value) is raised  # the name the state machine matches
    assert uri in str(error.value) and code in str(error.value)


def _port_shaped_definition(arns: dict[str, str]) -> dict[str, Any]:
    """The port's find_work_state_machine for the id-minter (FindWork, a Map over partition refs
    into MintPartition with its worker retries, failures recorded and checked after the Map),
    written in JSONPath: moto evaluates JSONata only through a Java runtime. Inside the Map, the
    state after the minting task reads the port's result fields, so a missing one fails it."""
    lambda_retry = [
        {
            "ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
            "IntervalSeconds": 2,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
        },
        {"ErrorEquals": ["Lambda.Unknown"], "IntervalSeconds": 5, "MaxAttempts": 2},
    ]
    return {
        "Comment": "Find works indexed within the window and mint canonical ids for them.",
        "StartAt": "FindWork",
        "States": {
            "FindWork": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arns["find-work"], "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Retry": lambda_retry[:1],
                "Next": "ProcessPartitions",
            },
            "ProcessPartitions": {
                "Type": "Map",
                "ItemsPath": "$.partitions",
                "MaxConcurrency": 6,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "MintPartition",
                    "States": {
                        "MintPartition": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": arns["id-minter"], "Payload.$": "$"},
                            "ResultSelector": {"result.$": "$.Payload"},
                            "ResultPath": "$.minted",
                            "Retry": lambda_retry,
                            "Catch": [
                                {
                                    "ErrorEquals": ["States.ALL"],
                                    "ResultPath": "$.error",
                                    "Next": "RecordPartitionFailure",
                                }
                            ],
                            "Next": "ReadResult",
                        },
                        "ReadResult": {
                            "Type": "Pass",
                            "Parameters": {
                                "partition_failed": False,
                                "job_id.$": "$.minted.result.job_id",
                                "window.$": "$.minted.result.window",
                                "success_count.$": "$.minted.result.success_count",
                                "failure_count.$": "$.minted.result.failure_count",
                                "report_s3_uri.$": "$.minted.result.report_s3_uri",
                            },
                            "End": True,
                        },
                        "RecordPartitionFailure": {
                            "Type": "Pass",
                            "Parameters": {
                                "partition_failed": True,
                                "s3_uri.$": "$.s3_uri",
                                "error.$": "$.error.Error",
                            },
                            "End": True,
                        },
                    },
                },
                "ResultSelector": {
                    "partition_count.$": "States.ArrayLength($)",
                    "partitions.$": "$",
                },
                "Next": "CheckPartitionFailures",
            },
            "CheckPartitionFailures": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.partitions[?(@.partition_failed == true)]",
                        "IsPresent": True,
                        "Next": "FailPartitions",
                    }
                ],
                "Default": "Succeeded",
            },
            "FailPartitions": {"Type": "Fail", "Error": "PartitionsFailed"},
            "Succeeded": {"Type": "Succeed"},
        },
    }


def test_a_port_shaped_state_machine_runs_against_this_projects_handler(
    port_env, buckets, monkeypatch, connect_registry
):
    partitions = [
        {
            "source_identifiers": [f"sierra-system-number/c{n}" for n in range(3)],
            "job_id": "w-p000",
        },
        {
            "source_identifiers": ["sierra-system-number/c3", "sierra-system-number/c4"],
            "job_id": "w-p001",
        },
    ]

    def port_find_work(event: dict[str, Any]) -> dict[str, Any]:
        # The port's find-work output for a window: each partition written to S3, refs returned.
        assert event == {"scheduled_time": "2026-07-30T10:05:00Z"}
        refs = [buckets.put_partition(i, {**p, "window": None}) for i, p in enumerate(partitions)]
        return {"partitions": refs}

    functions = {"find-work": port_find_work, "id-minter": lambda event: handler(event, None)}
    with state_machine(monkeypatch, functions, _port_shaped_definition) as machine:
        buckets.create()
        execution = machine.execute({"scheduled_time": "2026-07-30T10:05:00Z"})
        assert execution.status == "SUCCEEDED", execution.cause
        results = sorted(execution.output["partitions"], key=lambda r: r["job_id"])
        assert execution.output["partition_count"] == 2
        assert [(r["job_id"], r["success_count"], r["failure_count"]) for r in results] == [
            ("w-p000", 3, 0),
            ("w-p001", 2, 0),
        ]
        for result in results:
            assert result["report_s3_uri"].endswith(f"/id_minter/prod/{result['job_id']}.json")
            assert (
                len(_report(result["report_s3_uri"])["successful_ids"]) == result["success_count"]
            )
    assert port_env.count_identified() == 5
