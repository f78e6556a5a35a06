"""Alerts about failed runs carry their cause (the innermost exception's type and message), the
run id and the partition, as delivered to SNS (moto's real server); failed replenishment and
reconciliation runs alert; launchpad mistakes do not. The reconciliation schedule requests runs.
Against the real registry."""

import socket
import uuid
from dataclasses import replace
from datetime import datetime

import dagster as dg
import pytest
from dagster_helpers import failure_context, works_resources
from sns_helpers import subscribed_topic
from works_helpers import work

from idminter_pipeline.defs.alerts.failures import failure_decision, job_label
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.pool.assets import canonical_id_pool
from idminter_pipeline.defs.pool.jobs import pool_replenishment_job
from idminter_pipeline.defs.pool.resources import FreeIdPool
from idminter_pipeline.defs.pool.sensors import pool_replenishment_failure_alert
from idminter_pipeline.defs.reconciliation.assets import registry_reconciliation
from idminter_pipeline.defs.reconciliation.jobs import (
    RECONCILIATION_JOB_NAME,
    registry_reconciliation_job,
)
from idminter_pipeline.defs.reconciliation.schedules import (
    DEFAULT_RECONCILIATION_CRON,
    RECONCILIATION_CRON_ENV,
    RECONCILIATION_SCHEDULE_NAME,
    build_registry_reconciliation_schedule,
    registry_reconciliation_schedule,
)
from idminter_pipeline.defs.reconciliation.sensors import (
    registry_reconciliation_failure_alert,
)
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.defs.retries import OUTAGE_STEP_RETRY_SECONDS_ENV
from idminter_pipeline.defs.works.assets import identified_works
from idminter_pipeline.defs.works.jobs import mint_works_job
from idminter_pipeline.defs.works.sensors import works_run_failure_alert
from idminter_pipeline.registry.outage import OUTAGE_ENV
from idminter_pipeline.registry.pool import PoolSettings
from idminter_pipeline.works.stores import SqliteWorksStore

SETTINGS = PoolSettings(target_free=2_000, low_watermark=1_000, critical_watermark=200)


@pytest.fixture
def topic(aws_env):
    """An SNS topic on moto with an SQS queue subscribed, so tests read what SNS delivered."""
    subscribed = subscribed_topic(f"idminter-alerts-{uuid.uuid4().hex[:8]}")
    return subscribed.topic_arn, subscribed.envelopes


@pytest.fixture
def alerts(topic, tmp_path) -> AlertsResource:
    topic_arn, _ = topic
    return AlertsResource(log_file=str(tmp_path / "alerts.log"), sns_topic_arn=topic_arn)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _minting_defs(registry, tmp_path, alerts) -> dg.Definitions:
    """`identified_works` over one source work, on a registry whose pool is empty."""
    store_path = tmp_path / "works.sqlite3"
    with SqliteWorksStore(store_path) as store:
        store.put_source([work("sierra-system-number", "b1", indexed_at="2026-07-30T09:01:00Z")])
    return dg.Definitions(
        assets=[identified_works],
        jobs=[mint_works_job],
        resources=works_resources(registry, store_path, tmp_path / "alerts.log", alerts=alerts),
    )


def test_a_minting_run_failure_alert_carries_the_innermost_cause_run_and_partition(
    registry, tmp_path, instance, alerts, topic
):
    _, delivered = topic
    defs = _minting_defs(registry, tmp_path, alerts)
    # The pool is empty: the run stops with PoolExhaustedError, wrapped by Dagster.
    result = defs.resolve_job_def("mint_works").execute_in_process(
        instance=instance, partition_key="2026-07-30-09:00", raise_on_error=False
    )
    [failure] = result.get_step_failure_events()
    assert failure.step_failure_data.error.cls_name == "DagsterExecutionStepExecutionError"

    assert works_run_failure_alert(failure_context(instance, result, {"alerts": alerts})) is None
    [envelope] = delivered()
    message = envelope["Message"]
    assert envelope["Subject"].startswith("[CRITICAL] Minting run failed: mint_works")
    assert f"Run: {result.run_id}" in message
    assert "Partition: 2026-07-30-09:00" in message
    assert (
        "Cause: PoolExhaustedError: free-ID pool exhausted: this call needs 1 new IDs but only "
        "0 are free" in message
    )
    assert "DagsterExecutionStepExecutionError" not in message
    assert "pool-exhaustion recovery" in message


def test_a_backfill_from_the_asset_page_is_alerted_by_its_assets_not_the_implicit_job(
    registry, tmp_path, instance, alerts, topic
):
    _, delivered = topic
    defs = _minting_defs(registry, tmp_path, alerts)
    # What the asset page launches: Dagster's implicit asset job, the asset selected.
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        partition_key="2026-07-30-09:00",
        asset_selection=[identified_works.key],
        raise_on_error=False,
    )
    assert instance.get_run_by_id(result.run_id).job_name == "__ASSET_JOB"

    assert works_run_failure_alert(failure_context(instance, result, {"alerts": alerts})) is None
    [envelope] = delivered()
    assert envelope["Subject"].startswith("[CRITICAL] Minting run failed: identified_works (")
    message = envelope["Message"]
    assert f"Run {result.run_id} of identified_works (partition 2026-07-30-09:00)" in message
    assert "__ASSET_JOB" not in envelope["Subject"] + message


def test_a_run_of_many_assets_names_the_first_few():
    run = dg.DagsterRun(
        job_name="__ASSET_JOB",
        asset_selection=frozenset(dg.AssetKey(name) for name in ("d", "c", "b", "a", "e")),
    )
    assert job_label(run) == "a, b, c and 2 more asset(s)"
    assert job_label(dg.DagsterRun(job_name="mint_works")) == "mint_works"


def test_a_failed_replenishment_alerts_with_its_cause(empty_database, instance, alerts, topic):
    _, delivered = topic
    resources = {
        # A registry without the schema: the top-up cannot run.
        "registry_database": RegistryDatabase.from_settings(empty_database),
        "id_pool": FreeIdPool.from_settings(SETTINGS),
        "alerts": alerts,
    }
    defs = dg.Definitions(
        assets=[canonical_id_pool], jobs=[pool_replenishment_job], resources=resources
    )
    result = defs.resolve_job_def(pool_replenishment_job.name).execute_in_process(
        instance=instance, raise_on_error=False, tags={"idminter/reason": "pool-low-water"}
    )
    assert not result.success

    context = failure_context(instance, result, resources)
    assert pool_replenishment_failure_alert(context) is None
    [envelope] = delivered()
    message = envelope["Message"]
    assert envelope["Subject"].startswith("[CRITICAL] Free-ID pool replenishment failed")
    assert f"Run: {result.run_id}" in message
    # The innermost exception: the server's own error, not Dagster's wrapper around it.
    assert "Cause: ProgrammingError: (1146, \"Table '" in message
    assert ".canonical_ids' doesn't exist\")" in message
    assert "requested by pool-low-water" in message
    assert "idminter pool top-up --target 2000" in message

    # Other runs are not the pool sensor's to report.
    works_context = failure_context(instance, result, resources)
    decision = failure_decision(works_run_failure_alert)(works_context, resources["alerts"])
    assert "does not mint works" in decision.skip_message


def test_a_run_refused_by_its_config_is_not_alerted(registry, instance, alerts, topic):
    _, delivered = topic
    resources = {"registry_database": RegistryDatabase.from_settings(registry), "alerts": alerts}
    defs = dg.Definitions(
        assets=[registry_reconciliation], jobs=[registry_reconciliation_job], resources=resources
    )
    # Only the step can tell that this is not a duration: it refuses its config, naming it.
    result = defs.resolve_job_def(RECONCILIATION_JOB_NAME).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"registry_reconciliation": {"config": {"grace_period": "a week"}}}},
    )
    assert not result.success
    skipped = failure_decision(registry_reconciliation_failure_alert)(
        failure_context(instance, result, resources), resources["alerts"]
    )
    assert "refused by config validation" in skipped.skip_message
    assert "a week" in skipped.skip_message
    assert delivered() == []


def test_a_reconciliation_that_cannot_run_alerts_with_its_cause(
    registry, instance, alerts, topic, monkeypatch
):
    _, delivered = topic
    # The registry stays away: ride it out for a second per attempt, a second apart, not minutes.
    monkeypatch.setenv(OUTAGE_ENV, "1")
    monkeypatch.setenv(OUTAGE_STEP_RETRY_SECONDS_ENV, "1")
    unreachable = RegistryDatabase.from_settings(replace(registry, port=_closed_port()))
    resources = {"registry_database": unreachable, "alerts": alerts}
    defs = dg.Definitions(
        assets=[registry_reconciliation], jobs=[registry_reconciliation_job], resources=resources
    )
    result = defs.resolve_job_def(RECONCILIATION_JOB_NAME).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    assert (
        registry_reconciliation_failure_alert(failure_context(instance, result, resources)) is None
    )
    [envelope] = delivered()
    assert envelope["Subject"].startswith("[CRITICAL] Registry reconciliation failed")
    assert f"Run: {result.run_id}" in envelope["Message"]
    assert "Cause: " in envelope["Message"]
    cause = next(line for line in envelope["Message"].splitlines() if line.startswith("Cause: "))
    assert "Can't connect" in cause or "Connection refused" in cause, cause


def test_a_critical_reconciliation_finding_alerts_through_sns(
    registry, instance, alerts, topic, connect_registry
):
    _, delivered = topic
    with connect_registry() as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO canonical_ids (CanonicalId, Status) VALUES ('abcdefgh', 'free')"
        )
        cursor.execute(
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
            "VALUES ('Work', 'sierra-system-number', 'b1', 'abcdefgh')"
        )
        conn.commit()
    resources = {"registry_database": RegistryDatabase.from_settings(registry), "alerts": alerts}
    defs = dg.Definitions(
        assets=[registry_reconciliation],
        jobs=[registry_reconciliation_job],
        schedules=[registry_reconciliation_schedule],
        resources=resources,
    )
    # What the schedule's tick asks for, run as the daemon would run it.
    tick = registry_reconciliation_schedule.evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 2, 30))
    )
    [request] = tick.run_requests
    result = defs.resolve_job_def(registry_reconciliation_schedule.job_name).execute_in_process(
        instance=instance, raise_on_error=False, tags=request.tags
    )
    assert not result.success  # the blocking check
    [envelope] = delivered()
    assert envelope["Subject"].startswith(
        "[CRITICAL] Registry reconciliation found free IDs in use"
    )
    assert f"Run: {result.run_id}" in envelope["Message"]
    assert "Cause: 1 free IDs in use (critical); examples: abcdefgh" in envelope["Message"]
    # The run said it; the failure sensor does not say it again.
    skipped = failure_decision(registry_reconciliation_failure_alert)(
        failure_context(instance, result, resources), resources["alerts"]
    )
    assert "alerted by the run itself" in skipped.skip_message
    assert delivered() == []


def test_the_reconciliation_schedule_requests_a_daily_run():
    assert registry_reconciliation_schedule.name == RECONCILIATION_SCHEDULE_NAME
    assert registry_reconciliation_schedule.cron_schedule == DEFAULT_RECONCILIATION_CRON
    assert registry_reconciliation_schedule.job_name == RECONCILIATION_JOB_NAME
    assert registry_reconciliation_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 2, 30))
    [request] = registry_reconciliation_schedule.evaluate_tick(context).run_requests
    assert request.tags["idminter/reason"] == "schedule"
    assert request.tags["dagster/schedule_name"] == RECONCILIATION_SCHEDULE_NAME


def test_the_reconciliation_cron_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(RECONCILIATION_CRON_ENV, "15 4 * * 0")
    assert build_registry_reconciliation_schedule().cron_schedule == "15 4 * * 0"
