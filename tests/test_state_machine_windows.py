"""deploy/aws/minter.yaml's `mint-window` state machine EXECUTED in moto with the template's own
definition: the real find-work step splits the scope into batches in S3 and a Distributed Map
(ItemReader over the find-work manifest) hands each to the real minting handler, against the
real registry, the embedded works store, and moto's S3 and DynamoDB (the window lock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from state_machine_harness import REGION, MinterStateMachine, state_machine, template_definition
from works_helpers import embedded_store_holding, work

from idminter_pipeline.aws_lambda import handler as lambda_handler
from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.core.settings import ConnectionBudget
from idminter_pipeline.works.stores import SqliteWorksStore

BUCKET = "idminter-run-data"
TABLE = "idminter-window-locks"
MINTER, FIND_WORK = "idminter-minter", "idminter-find-work"
WINDOW = {"startTime": "2026-07-30T10:00:00Z", "endTime": "2026-07-30T10:15:00Z"}


@pytest.fixture
def store(registry_env, connect_registry, tmp_path, monkeypatch):
    works = [
        work("sierra-system-number", f"w{n}", indexed_at="2026-07-30T10:05:00Z") for n in range(10)
    ] + [work("sierra-system-number", "later", indexed_at="2026-07-30T11:00:00Z")]
    store_path = embedded_store_holding(monkeypatch, tmp_path, works, connect_registry, 200)
    monkeypatch.setenv("IDMINTER_BATCHES_BUCKET", BUCKET)
    monkeypatch.setenv("S3_BUCKET", BUCKET)
    monkeypatch.setenv("IDMINTER_FIND_WORK_BATCH_SIZE", "4")
    with SqliteWorksStore(store_path) as opened:
        yield opened


def _definition(arns: dict[str, str]) -> dict[str, Any]:
    return template_definition(
        "WindowStateMachine",
        {
            "FindWorkFunctionArn": arns[FIND_WORK],
            "MinterFunctionArn": arns[MINTER],
            "WindowLocksTable": TABLE,
        },
    )


@contextmanager
def window_machine(monkeypatch, minter=None) -> Iterator[MinterStateMachine]:
    functions = {
        FIND_WORK: lambda event: lambda_handler.find_work(event, None),
        MINTER: minter or (lambda event: lambda_handler.handler(event, None)),
    }
    with state_machine(monkeypatch, functions, _definition) as machine:
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "lockKey", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "lockKey", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield machine


def _locks() -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]


def test_a_window_is_split_into_batches_each_minted_by_its_own_invocation(store, monkeypatch):
    with window_machine(monkeypatch) as machine:
        execution = machine.execute({"window": WINDOW, "jobId": "w1"})
        assert execution.status == "SUCCEEDED", execution.cause
        assert execution.output == {
            "jobId": "w1",
            "window": {"start_time": "2026-07-30T10:00:00Z", "end_time": "2026-07-30T10:15:00Z"},
            "workCount": 10,
            "batchCount": 3,
            "anyBatchFailed": False,
        }
        minting = [e for e in machine.invocations if "s3_uri" in e]
        assert sorted(e["count"] for e in minting) == [2, 4, 4]
        assert _locks() == []  # released
        reports = boto3.client("s3", region_name=REGION).list_objects_v2(
            Bucket=BUCKET, Prefix="pipeline-"
        )
        assert len(reports["Contents"]) == 3  # one report per batch, the port's place
    assert store.count_identified() == 10


def test_a_window_of_zero_works_succeeds_with_zero_counts(store, monkeypatch):
    with window_machine(monkeypatch) as machine:
        execution = machine.execute(
            {"window": {"endTime": "2026-07-30T09:00:00Z"}, "jobId": "empty"}
        )
        assert execution.status == "SUCCEEDED", execution.cause
        assert execution.output["workCount"] == 0 and execution.output["batchCount"] == 0
        assert execution.output["anyBatchFailed"] is False
        assert not [e for e in machine.invocations if "s3_uri" in e]
        assert _locks() == []


def _hold_window(expires_at: str) -> None:
    """The window's hold as another execution recorded it, expiring at `expires_at`."""
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=TABLE,
        Item={
            "lockKey": {"S": "windows/20260730T1000-20260730T1015"},
            "execution": {"S": "arn:aws:states:eu-west-1:123456789012:execution:x:first"},
            "expiresAt": {"S": expires_at},
        },
    )


def test_a_window_another_execution_holds_is_not_minted_again_at_once(store, monkeypatch):
    with window_machine(monkeypatch) as machine:
        # An execution over the window is running (its hold is recorded and not expired).
        _hold_window("2999-01-01T00:00:00.000000Z")
        busy = machine.execute({"window": WINDOW, "jobId": "recovery"})
        assert (busy.status, busy.error) == ("FAILED", "WindowBusy")
        assert not [e for e in machine.invocations if "s3_uri" in e]
        assert store.count_identified() == 0

        # The first one stopped without releasing: once its hold expires a re-run takes over.
        _hold_window("2000-01-01T00:00:00.000000Z")
        rerun = machine.execute({"window": WINDOW, "jobId": "recovery"})
        assert rerun.status == "SUCCEEDED", rerun.cause
        assert _locks() == []
    assert store.count_identified() == 10


def test_a_missing_batch_fails_that_batch_alone_naming_its_object(store, monkeypatch):
    deleted: list[str] = []

    def minter(event: dict[str, Any]) -> Any:
        # The second batch's object disappears before its invocation reads it.
        if event["s3_uri"].endswith("partition-1.json") and not deleted:
            bucket, key = event["s3_uri"].removeprefix("s3://").split("/", 1)
            boto3.client("s3", region_name=REGION).delete_object(Bucket=bucket, Key=key)
            deleted.append(event["s3_uri"])
        return lambda_handler.handler(event, None)

    with window_machine(monkeypatch, minter) as machine:
        execution = machine.execute({"window": WINDOW, "jobId": "gone"})
        assert (execution.status, execution.error) == ("FAILED", "BatchesFailed")
        # InvalidInputError is not retried: the batch was invoked once.
        assert [e["s3_uri"] for e in machine.invocations if "s3_uri" in e].count(deleted[0]) == 1
        history = machine.sfn.get_execution_history(
            executionArn=machine.sfn.list_executions(stateMachineArn=machine.arn)["executions"][0][
                "executionArn"
            ]
        )
        (exited,) = [e for e in history["events"] if e["type"] == "MapStateExited"]
        batches = json.loads(exited["stateExitedEventDetails"]["output"])["minted"]["batches"]
        assert [b for b in batches if b["batchFailed"]] == [
            {"batchFailed": True, "s3_uri": deleted[0], "error": "InvalidInputError"}
        ]
        assert _locks() == []
    assert store.count_identified() == 6  # the other two batches: 4 and 2 works


def test_the_connection_budget_refuses_more_than_the_registry_allows():
    with pytest.raises(InvalidSettingError) as raised:
        ConnectionBudget.from_env(
            {
                "RDS_MAX_CONNECTIONS": "30",
                "IDMINTER_LAMBDA_CONCURRENCY": "10",
                "IDMINTER_DAGSTER_REGISTRY_CONNECTIONS": "20",
            }
        )
    assert "may hold 40" in str(raised.value) and "RDS_MAX_CONNECTIONS '30'" in str(raised.value)
    budget = ConnectionBudget.from_env(
        {
            "RDS_MAX_CONNECTIONS": "40",
            "IDMINTER_LAMBDA_CONCURRENCY": "10",
            "IDMINTER_DAGSTER_REGISTRY_CONNECTIONS": "20",
        }
    )
    assert budget.total == 40


def test_the_two_state_machines_retry_a_batch_alike():
    mint_works = template_definition("MinterStateMachine", {"MinterFunctionArn": "f"})
    mint_window = _definition({FIND_WORK: "g", MINTER: "f"})
    inline = mint_works["States"]["MintBatches"]["ItemProcessor"]["States"]["MintBatch"]
    distributed = mint_window["States"]["MintBatches"]["ItemProcessor"]["States"]["MintBatch"]
    assert inline["Retry"] == distributed["Retry"]
