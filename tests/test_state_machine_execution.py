"""deploy/aws/minter.yaml's state machine EXECUTED (moto's Step Functions interpreter), its Lambda
task served in-process by the real handler, against the real registry (MariaDB) and the embedded
works store: several batches, a registry outage longer than the Lambda's own bound, an empty
pool, a bad work, and an input of 20 batches of 500 identifiers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from db_helpers import create_database, drop_database, private_mariadb
from state_machine_harness import minter_state_machine
from works_helpers import fill_pool, plant_bad_document, use_embedded_store, work

from idminter_pipeline.aws_lambda import handler as lambda_handler
from idminter_pipeline.local_servers.mariadb import ensure_server, stop_server
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.outage import OUTAGE_ENV
from idminter_pipeline.registry.pool import top_up
from idminter_pipeline.registry.schema import apply_migrations
from idminter_pipeline.works.stores import SqliteWorksStore


def _ids(prefix: str, count: int) -> list[str]:
    return [f"sierra-system-number/{prefix}{n}" for n in range(count)]


@pytest.fixture
def works_store(registry_env, tmp_path, monkeypatch):
    store_path = use_embedded_store(monkeypatch, tmp_path)
    store = SqliteWorksStore(store_path)
    yield store
    store.close()


def _put(store: SqliteWorksStore, identifiers: list[str]) -> None:
    store.put_source([work(*identifier.split("/", 1)) for identifier in identifiers])


@pytest.fixture
def execute_batches(works_store, connect_registry, monkeypatch):
    """Runs the state machine over `batches` (`jobId` `job_id`), their works put in the source
    store first and `free_ids` in the pool."""

    def execute(job_id: str, batches: list[list[str]], *, free_ids: int):
        _put(works_store, [i for batch in batches for i in batch])
        fill_pool(connect_registry, free_ids)
        with minter_state_machine(monkeypatch) as machine:
            return machine.execute({"jobId": job_id, "batches": batches})

    return execute


def test_a_map_over_several_batches_mints_every_batch(works_store, execute_batches):
    batches = [_ids("a", 3), _ids("b", 2), _ids("c", 4)]
    execution = execute_batches("job-1", batches, free_ids=100)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.invocations == 3
    output = execution.output
    assert output["jobId"] == "job-1" and output["anyBatchFailed"] is False
    assert sorted(b["batch"] for b in output["batches"]) == [0, 1, 2]
    by_batch = {b["batch"]: b for b in output["batches"]}
    assert [by_batch[i]["written"] for i in range(3)] == [3, 2, 4]
    assert [by_batch[i]["minted"] for i in range(3)] == [3, 2, 4]
    assert works_store.count_identified() == 9
    assert "processedIdentifiers" not in json.dumps(output)


def test_one_bad_work_is_reported_in_the_output_and_the_rest_written(
    works_store, connect_registry, monkeypatch
):
    bad_id, _ = plant_bad_document(works_store.path, "not JSON", datetime(2026, 7, 30, tzinfo=UTC))
    good = _ids("g", 4)
    _put(works_store, good)
    fill_pool(connect_registry, 100)
    bad = bad_id.removeprefix("Work[").removesuffix("]")
    with minter_state_machine(monkeypatch) as machine:
        execution = machine.execute({"jobId": "j", "batches": [good[:2], [good[2], bad, good[3]]]})
    assert execution.status == "SUCCEEDED", execution.cause  # a bad work fails alone
    by_batch = {b["batch"]: b for b in execution.output["batches"]}
    assert by_batch[1]["written"] == 2 and by_batch[1]["failed"] == 1
    (failure,) = by_batch[1]["failures"]
    assert failure["sourceIdentifier"] == bad and failure["stage"] == "read"
    assert "not valid JSON" in failure["detail"]
    assert works_store.count_identified() == 4


def test_an_empty_pool_is_retried_after_a_top_up(works_store, connect_registry, monkeypatch):
    _put(works_store, _ids("p", 3))

    def top_up_at_first_wait(wait: int) -> None:
        if wait == 1:  # what the pool's Dagster schedule or sensor does meanwhile
            fill_pool(connect_registry, 100)

    with minter_state_machine(monkeypatch, on_retry=top_up_at_first_wait) as machine:
        execution = machine.execute({"jobId": "j", "batches": [_ids("p", 3)]})
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.invocations == 2
    assert execution.waits and execution.waits[0] <= 60  # the pool rule's first interval
    assert works_store.count_identified() == 3


@pytest.fixture(scope="module")
def private_server(tmp_path_factory):
    """A MariaDB of this module's own, which a test stops and starts (never the shared one)."""
    with private_mariadb(tmp_path_factory.mktemp("sfn-outage-mariadb")) as server:
        yield server


@pytest.mark.slow(seconds=12)
def test_a_registry_outage_longer_than_the_lambdas_bound_is_retried_by_the_state_machine(
    private_server, tmp_path, monkeypatch
):
    server, paths = private_server
    settings = create_database(server, "sfn_outage_")
    try:
        apply_migrations(lambda: connect(settings))
        top_up(lambda: connect(settings), 100)
        for name, value in {
            **settings.as_environment(),
            OUTAGE_ENV: "1",  # the Lambda rides out one second itself, then reports the outage
        }.items():
            monkeypatch.setenv(name, value)
        store_path = use_embedded_store(monkeypatch, tmp_path)
        identifiers = _ids("o", 3)
        with SqliteWorksStore(store_path) as store:
            _put(store, identifiers)

        errors: list[str] = []

        def serve(event):
            try:
                return lambda_handler.handler(event, None)
            except Exception as error:
                errors.append(type(error).__name__)
                raise

        def restart_at_second_wait(wait: int) -> None:
            if wait == 2:  # the failover is over
                ensure_server(server, paths, start_local=True)

        stop_server(paths)  # an Aurora failover, longer than the Lambda's own bound
        with minter_state_machine(
            monkeypatch, function=serve, on_retry=restart_at_second_wait
        ) as machine:
            execution = machine.execute({"jobId": "j", "batches": [identifiers]})
        assert errors == ["RegistryUnavailableError", "RegistryUnavailableError"]
        assert execution.status == "SUCCEEDED", execution.cause
        assert execution.invocations == 3 and len(execution.waits) == 2
        with SqliteWorksStore(store_path) as store:
            assert store.count_identified() == 3
    finally:
        ensure_server(server, paths, start_local=True)
        drop_database(settings)


def _mets_ids(batch: int, count: int) -> list[str]:
    return [f"mets/b{batch:02d}{n:05d}x" for n in range(count)]


def test_twenty_batches_of_500_identifiers_complete(works_store, execute_batches):
    # METS identifiers: 10,000 of them fit the execution's 256 KB input quota (catalogue-length
    # ones would not, and Step Functions refuses such an input before it starts; see below).
    batches = [_mets_ids(b, 500) for b in range(20)]
    assert len(json.dumps({"jobId": "big", "batches": batches})) < 256 * 1024
    execution = execute_batches("big", batches, free_ids=10_500)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.invocations == 20
    assert sum(b["written"] for b in execution.output["batches"]) == 10_000
    assert works_store.count_identified() == 10_000
    # What Step Functions keeps does not grow with the batches' sizes: one small summary each.
    assert len(json.dumps(execution.output)) < 20 * 300


def test_an_input_over_the_quota_fails_before_anything_is_minted(
    works_store, connect_registry, monkeypatch
):
    batches = [_ids(f"x{b}-", 500) for b in range(20)]  # ~330 KB
    fill_pool(connect_registry, 100)
    with minter_state_machine(monkeypatch) as machine:
        execution = machine.execute({"jobId": "big", "batches": batches})
    assert execution.status == "FAILED" and execution.error == "States.DataLimitExceeded"
    assert execution.invocations == 0


def test_more_batches_than_the_output_can_summarise_are_refused_before_minting(
    works_store, connect_registry, monkeypatch
):
    with minter_state_machine(monkeypatch) as machine:
        execution = machine.execute({"jobId": "j", "batches": [["mets/b1"]] * 1_001})
    assert execution.status == "FAILED" and execution.error == "TooManyBatches"
    assert execution.invocations == 0
