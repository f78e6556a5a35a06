"""The works pipeline in Dagster, against the real registry: partitions, a multi-partition
(backfill) run, the schedule, the failure-alert sensor and the pool-exhaustion recovery."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import WILL_RETRY_TAG
from dagster._record import copy
from dagster_helpers import WORKS_POOL, failure_context, works_resources
from db_helpers import fetch_all
from works_helpers import BAD_DOCUMENTS, fill_pool, plant_bad_document, work

from idminter_pipeline.defs.alerts.failures import failure_decision
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.works.assets import MAX_PARTITIONS_PER_RUN, identified_works
from idminter_pipeline.defs.works.jobs import (
    mint_works_by_id_job,
    mint_works_job,
    replenish_and_mint_works_by_id_job,
    replenish_and_mint_works_job,
)
from idminter_pipeline.defs.works.partitions import WORKS_PARTITIONS, window_cron
from idminter_pipeline.defs.works.schedules import mint_latest_works_window
from idminter_pipeline.defs.works.sensors import (
    RETRY_OF_TAG,
    pool_exhaustion_recovery,
    recover_from_pool_exhaustion,
    works_run_failure_alert,
)
from idminter_pipeline.registry.invariants import mapping_change_permit
from idminter_pipeline.works.documents import Stage
from idminter_pipeline.works.sample_data import DEFAULT_START, generate_works
from idminter_pipeline.works.stores import SqliteWorksStore

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SPACING = timedelta(minutes=1)  # 40 works over three 15-minute windows: 09:00, 09:15, 09:30


@pytest.fixture
def setup(registry, tmp_path):
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source(generate_works(40, seed=11, spacing=SPACING))
    alerts_log = tmp_path / "alerts.log"
    resources = works_resources(
        registry,
        store_path,
        alerts_log,
        id_pool=FreeIdPool.from_settings(WORKS_POOL),
    )
    defs = dg.Definitions(
        assets=[identified_works, canonical_id_pool],
        jobs=[
            mint_works_job,
            mint_works_by_id_job,
            replenish_and_mint_works_job,
            replenish_and_mint_works_by_id_job,
        ],
        sensors=[works_run_failure_alert, pool_exhaustion_recovery],
        schedules=[mint_latest_works_window],
        resources=resources,
    )
    return {
        "defs": defs,
        "store_path": store_path,
        "alerts_log": alerts_log,
        "resources": resources,
        "registry": registry,
    }


def _figures(result, node="identified_works"):
    materializations = result.asset_materializations_for_node(node)
    return materializations, {k: v.value for k, v in materializations[0].metadata.items()}


def _check(result, name="no_failed_works"):
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return check


def _written_or_superseded(materializations):
    """Works written or superseded (a newer record of their chain holds the document)."""
    assert _total(materializations, "works_superseded") > 0
    return _total(materializations, "works_written") + _total(materializations, "works_superseded")


def _total(materializations, figure):
    return sum(m.metadata[figure].value for m in materializations)


def test_one_partition_mints_one_window(setup, connect_registry):
    fill_pool(connect_registry, 2_000)
    result = dg.materialize(
        [identified_works], partition_key="2026-07-30-09:00", resources=setup["resources"]
    )
    assert result.success
    materializations, figures = _figures(result)
    assert [m.partition for m in materializations] == ["2026-07-30-09:00"]
    assert figures["works_read"] == 15  # works 0..14, one a minute; 09:15 belongs to the next
    # Works 0 and 4 are superseded by their successors 6 and 8, in the same batch.
    assert (figures["works_written"], figures["works_superseded"]) == (13, 2)
    assert figures["works_failed"] == 0 and figures["succession_conflicts"] == 0
    assert figures["identifiers_found"] > 15
    assert figures["failures_by_stage"] == dict.fromkeys(map(str, Stage), 0)
    assert figures["failed_works_listed"] == "No work failed."
    assert figures["failed_works"].records == []
    check = _check(result)
    assert check.check_name == "no_failed_works" and check.passed
    assert check.partition == "2026-07-30-09:00"
    assert "13 of 15 written, 2 superseded" in check.description
    assert _check(result, "no_succession_conflicts").passed


def test_a_backfill_range_runs_as_one_multi_partition_run_and_is_idempotent(
    setup, connect_registry
):
    fill_pool(connect_registry, 2_000)
    assert identified_works.backfill_policy.max_partitions_per_run == MAX_PARTITIONS_PER_RUN
    job = setup["defs"].resolve_job_def("mint_works")
    tags = {RANGE_START: "2026-07-30-09:00", RANGE_END: "2026-07-30-09:30"}
    with dg.DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(instance=instance, tags=tags)
        materializations, _ = _figures(first)
        assert sorted(m.partition for m in materializations) == [
            "2026-07-30-09:00",
            "2026-07-30-09:15",
            "2026-07-30-09:30",
        ]
        # Each partition carries its own window's figures (15, 15 and 10 works).
        assert _total(materializations, "works_read") == 40
        assert _written_or_superseded(materializations) == 40
        assert _total(materializations, "identifiers_minted") > 0
        assert _total(materializations, "identifiers_inherited") > 0
        mappings = fetch_all(
            setup["registry"], "SELECT SourceId, CanonicalId FROM identifiers ORDER BY 1"
        )
        again = job.execute_in_process(instance=instance, tags=tags)
        materializations_again, _ = _figures(again)
    assert _total(materializations_again, "identifiers_minted") == 0
    assert _total(materializations_again, "identifiers_inherited") == 0
    assert _total(materializations_again, "identifiers_existing") == _total(
        materializations, "identifiers_found"
    )
    assert (
        fetch_all(setup["registry"], "SELECT SourceId, CanonicalId FROM identifiers ORDER BY 1")
        == mappings
    )


def test_failed_works_fail_the_check_and_the_run_and_attach_a_report(setup, connect_registry):
    fill_pool(connect_registry, 2_000)
    with SqliteWorksStore(setup["store_path"]) as store:
        store.put_source(
            [
                work(
                    "folio-instance",
                    "orphan",
                    indexed_at="2026-07-30T09:31:00Z",
                    predecessor=("sierra-system-number", "b-missing"),
                ),
            ]
        )
    result = dg.materialize(
        [identified_works],
        partition_key="2026-07-30-09:30",
        resources=setup["resources"],
        raise_on_error=False,
    )
    # The blocking ERROR check fails the run, after the window's figures are recorded.
    assert not result.success
    _, figures = _figures(result)
    assert figures["works_failed"] == 1
    assert figures["works_written"] + figures["works_superseded"] == 10
    assert figures["failures_by_stage"]["mint"] == 1
    [row] = figures["failed_works"].records
    assert row.data["work_id"] == "Work[folio-instance/orphan]"
    assert row.data["stage"] == "mint"
    assert "b-missing" in row.data["reason"]
    check = _check(result)
    assert not check.passed and check.partition == "2026-07-30-09:30"
    alerts = [json.loads(line) for line in setup["alerts_log"].read_text().splitlines()]
    assert alerts[-1]["title"] == "1 work(s) failed minting"
    assert alerts[-1]["partition"] == "2026-07-30-09:30"
    assert alerts[-1]["run_id"] == result.run_id


@pytest.mark.parametrize("kind", sorted(BAD_DOCUMENTS))
def test_a_bad_document_fails_alone_through_the_asset(setup, connect_registry, kind):
    """The 09:00 window holds 15 good works; the bad one sits in the second of four batches."""
    fill_pool(connect_registry, 2_000)
    bad_id, planted_good = plant_bad_document(
        setup["store_path"], kind, datetime(2026, 7, 30, 9, 5, 30, tzinfo=UTC)
    )
    stage, phrase = BAD_DOCUMENTS[kind]
    config = {"ops": {"identified_works": {"config": {"batch_size": 4}}}}
    for _ in range(2):  # and a second run of the same partition
        result = dg.materialize(
            [identified_works],
            partition_key="2026-07-30-09:00",
            resources=setup["resources"],
            run_config=config,
            raise_on_error=False,
        )
        # The window is recorded, then its blocking no_failed_works check fails the run.
        assert not result.success
        _, figures = _figures(result)
        assert figures["works_read"] == 16 + len(planted_good)
        assert figures["works_written"] + figures["works_superseded"] == 15 + len(planted_good)
        assert figures["works_failed"] == 1
        assert figures["failures_by_stage"][stage] == 1
        [row] = figures["failed_works"].records
        assert row.data["work_id"] == bad_id and row.data["stage"] == stage
        assert phrase in row.data["reason"]
        check = _check(result)
        assert not check.passed and check.metadata["works_failed"].value == 1
    # Every good work of the window is in the identified index under its canonical ID.
    canonical_ids = dict(
        fetch_all(
            setup["registry"],
            "SELECT CONCAT(OntologyType, '[', SourceSystem, '/', SourceId, ']'), CanonicalId "
            "FROM identifiers WHERE OntologyType = 'Work'",
        )
    )
    good = [w.id for w in list(generate_works(40, seed=11, spacing=SPACING))[:15]]
    wanted = {canonical_ids[work_id] for work_id in [*good, *planted_good]}
    with SqliteWorksStore(setup["store_path"]) as store:
        assert set(store.get_identified(sorted(wanted))) == wanted


def test_the_schedule_mints_the_latest_closed_window_a_few_minutes_late():
    assert mint_latest_works_window.cron_schedule == "5-59/15 * * * *"
    assert window_cron(60, offset_minutes=5) == "5 */1 * * *"
    with pytest.raises(Exception, match="divisor of 60"):
        window_cron(7)
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 8, 3, 10, 5, tzinfo=UTC)
    )
    request = mint_latest_works_window(context)
    assert request.partition_key == "2026-08-03-09:45"
    assert request.run_key == "2026-08-03-09:45"
    early = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 8, 3, 10, 4, tzinfo=UTC)
    )
    assert mint_latest_works_window(early).partition_key == "2026-08-03-09:30"
    assert (
        WORKS_PARTITIONS.get_partition_key_for_timestamp(DEFAULT_START.timestamp())
        == "2026-07-30-09:00"
    )


def _failed_run(instance, job, **kwargs):
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    return result, run


def test_an_exhausted_pool_is_replenished_and_the_window_retried_without_a_person(setup):
    defs = setup["defs"]
    with dg.DagsterInstance.ephemeral() as instance:
        # The pool is empty: minting the window fails with PoolExhaustedError.
        result, run = _failed_run(
            instance, defs.resolve_job_def("mint_works"), partition_key="2026-07-30-09:00"
        )
        request = pool_exhaustion_recovery(failure_context(instance, result))
        assert isinstance(request, dg.RunRequest)
        assert request.job_name == "replenish_and_mint_works"
        assert request.run_key == f"pool-recovery:{run.run_id}"
        assert request.tags[RETRY_OF_TAG] == run.run_id
        assert request.tags["dagster/partition"] == "2026-07-30-09:00"

        # People hear about it too, through the alerts resource.
        assert (
            works_run_failure_alert(
                failure_context(instance, result, {"alerts": setup["resources"]["alerts"]})
            )
            is None
        )
        alert = json.loads(setup["alerts_log"].read_text().splitlines()[-1])
        assert alert["figures"]["pool_exhausted"] is True and alert["run_id"] == run.run_id
        assert alert["partition"] == "2026-07-30-09:00"
        assert alert["cause"].startswith("PoolExhaustedError: free-ID pool exhausted")

        retry = defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance,
            tags=request.tags,
            run_config=request.run_config,
            partition_key=request.tags["dagster/partition"],
        )
        assert retry.success
        assert retry.asset_materializations_for_node("canonical_id_pool")
        _, figures = _figures(retry)
        assert (figures["works_written"], figures["works_superseded"]) == (13, 2)

        # A recovery run that fails the same way is left to people: no loop of retries.
        retry_run = instance.get_run_by_id(retry.run_id)
        assert RETRY_OF_TAG in retry_run.tags
        fetch_all(setup["registry"], "SELECT 1")


def test_a_run_the_retry_daemon_re_executes_starts_one_recovery_and_pages_once(setup):
    """A failed run Dagster tagged `dagster/will_retry=true` is neither recovered nor alerted
    (its re-execution is the one that counts); the re-execution, if it finds the pool empty
    too, asks for the recovery of the same root run, so one recovery runs in all."""
    defs = setup["defs"]
    alerts = {"alerts": setup["resources"]["alerts"]}
    with dg.DagsterInstance.ephemeral() as instance:
        result, run = _failed_run(
            instance, defs.resolve_job_def("mint_works"), partition_key="2026-07-30-09:00"
        )
        first = run.with_tags({WILL_RETRY_TAG: "true"})
        skipped = recover_from_pool_exhaustion(failure_context(instance, result, run=first))
        assert isinstance(skipped, dg.SkipReason) and "will be retried" in skipped.skip_message
        alert = failure_decision(works_run_failure_alert)(
            failure_context(instance, result, run=first), alerts["alerts"]
        )
        assert isinstance(alert, dg.SkipReason) and "will be retried" in alert.skip_message
        assert not setup["alerts_log"].exists()

        again, again_run = _failed_run(
            instance, defs.resolve_job_def("mint_works"), partition_key="2026-07-30-09:00"
        )
        re_execution = copy(
            again_run.with_tags({WILL_RETRY_TAG: "false"}),
            root_run_id=run.run_id,
            parent_run_id=run.run_id,
        )
        request = pool_exhaustion_recovery(failure_context(instance, again, run=re_execution))
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == f"pool-recovery:{run.run_id}"
        decide = failure_decision(works_run_failure_alert)
        assert decide(failure_context(instance, again, alerts, run=re_execution), **alerts) is None
        (paged,) = setup["alerts_log"].read_text().splitlines()
        assert json.loads(paged)["run_id"] == again_run.run_id


def test_an_exhausted_pool_retries_the_explicit_ids_job_with_the_same_config(setup):
    defs = setup["defs"]
    works = list(generate_works(3, seed=11, spacing=SPACING))
    config = {"source_identifiers": [w.id for w in works], "job_id": "ids-job"}
    with dg.DagsterInstance.ephemeral() as instance:
        result, _ = _failed_run(
            instance, defs.resolve_job_def("mint_works_by_id"), run_config=config
        )
        request = pool_exhaustion_recovery(failure_context(instance, result))
        assert request.job_name == "replenish_and_mint_works_by_id"
        assert request.run_config == config
        retry = defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert retry.success
        summary = retry.output_for_node("mint_listed_works")
        assert summary["works_written"] == 3 and summary["job_id"] == "ids-job"

        # A failure that is not pool exhaustion is not retried automatically.
        result, _ = _failed_run(
            instance,
            defs.resolve_job_def("mint_works_by_id"),
            run_config={"source_identifiers": ["sierra-system-number/b-not-in-the-store"]},
        )
        skipped = recover_from_pool_exhaustion(failure_context(instance, result))
        assert isinstance(skipped, dg.SkipReason)
        assert "did not fail on an exhausted pool" in skipped.skip_message


def test_a_failed_recovery_run_is_not_retried_again(setup):
    defs = setup["defs"]
    with dg.DagsterInstance.ephemeral() as instance:
        result, _ = _failed_run(
            instance,
            defs.resolve_job_def("mint_works"),
            partition_key="2026-07-30-09:00",
            tags={RETRY_OF_TAG: "earlier"},
        )
        skipped = recover_from_pool_exhaustion(failure_context(instance, result))
        assert isinstance(skipped, dg.SkipReason) and "already a recovery" in skipped.skip_message


def test_an_exhausted_pool_during_a_backfill_run_retries_the_same_range(setup):
    defs = setup["defs"]
    tags = {RANGE_START: "2026-07-30-09:00", RANGE_END: "2026-07-30-09:30"}
    with dg.DagsterInstance.ephemeral() as instance:
        result, _ = _failed_run(instance, defs.resolve_job_def("mint_works"), tags=tags)
        request = pool_exhaustion_recovery(failure_context(instance, result))
        assert request.job_name == "replenish_and_mint_works"
        assert {k: request.tags[k] for k in tags} == tags
        retry = defs.resolve_job_def(request.job_name).execute_in_process(
            instance=instance, tags=request.tags, run_config=request.run_config
        )
        assert retry.success
        materializations, _ = _figures(retry)
        assert len(materializations) == 3
        assert _written_or_superseded(materializations) == 40


def test_two_live_successors_fail_the_conflict_check_until_resolved(setup, connect_registry):
    """RFC 083's second scenario: two records inherit one ID. The run reports the conflict and
    the partition's no_succession_conflicts check fails; once people fix the record and
    re-point its mapping, a re-run of the window passes."""
    fill_pool(connect_registry, 2_000)
    old = work("sierra-system-number", "b-shared", indexed_at="2026-07-30T09:31:00Z")
    folio = work(
        "folio-instance",
        "f-shared",
        indexed_at="2026-07-30T09:32:00Z",
        predecessor=("sierra-system-number", "b-shared"),
    )
    axiell = work(
        "axiell-collections-id",
        "x-shared",
        indexed_at="2026-07-30T09:33:00Z",
        predecessor=("sierra-system-number", "b-shared"),
    )
    with SqliteWorksStore(setup["store_path"]) as store:
        store.put_source([old, folio, axiell])

    def run():
        result = dg.materialize(
            [identified_works], partition_key="2026-07-30-09:30", resources=setup["resources"]
        )
        assert result.success  # a conflict is reported, not a failed work
        return result, _figures(result)[1], _check(result, "no_succession_conflicts")

    for _ in range(2):  # every run that meets it says so
        result, figures, check = run()
        assert figures["succession_conflicts"] == 1 and figures["works_failed"] == 0
        [conflict] = figures["succession_conflict_list"]
        assert (conflict["heldBy"], conflict["others"]) == (axiell.id, [folio.id])
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert axiell.id in check.description and folio.id in check.description
        assert _check(result, "no_failed_works").passed

    # Resolved: the Folio record no longer claims the Sierra record, and its mapping is removed
    # (the next run gives it an ID of its own).
    folio.document["state"].pop("predecessorIdentifier")
    with SqliteWorksStore(setup["store_path"]) as store:
        store.put_source([folio])
    registry_connection = connect_registry()
    with (
        mapping_change_permit(registry_connection, "the record lost its predecessor"),
        registry_connection.cursor() as cursor,
    ):
        cursor.execute(
            "DELETE FROM identifiers WHERE SourceSystem = 'folio-instance' "
            "AND SourceId = 'f-shared'"
        )
    registry_connection.commit()
    registry_connection.close()
    _, figures, check = run()
    assert check.passed and figures["succession_conflicts"] == 0
