"""A registry outage pages someone: the pool sensor, ticking against a private
MariaDB that is SIGKILLed and started again, sends ONE critical alert through the alert channels
(the log file and SNS on the moto server) once the outage outlasts
`IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS`, nothing more while it lasts, and one resolution
when a tick reads the registry again. A shorter outage pages no one. The pool's watermark checks
ride the outage out."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from dagster_helpers import POOL, logged_alerts, pool_sensor_ticks
from db_helpers import registry_on_private_server
from sns_helpers import subscribed_topic

from benchmarks.crash_runs import crash_server
from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.defs.pool.checks import _watermark_check
from idminter_pipeline.defs.resources import RegistryDatabase
from idminter_pipeline.local_servers.mariadb import ensure_server, stop_server
from idminter_pipeline.registry.outage import OUTAGE_ENV
from idminter_pipeline.registry.reachability import (
    ALERT_AFTER_ENV,
    DEFAULT_ALERT_AFTER_SECONDS,
    alert_after_seconds,
)

ALERT_AFTER = 3


# The titles as people read them, and as their runbook headings.
UNREACHABLE_TITLE = "Registry unreachable"
RECOVERED_TITLE = "Registry reachable again"


@pytest.fixture
def private_registry(private_server) -> Iterator[tuple[DatabaseSettings, object]]:
    server, paths = private_server
    with registry_on_private_server(server, paths, "alert_", POOL.target_free) as settings:
        yield settings, paths


@pytest.mark.slow(seconds=10)
def test_an_outage_past_the_bound_pages_once_and_its_end_resolves(
    private_registry, tmp_path, aws_env, monkeypatch
):
    settings, paths = private_registry
    monkeypatch.setenv(ALERT_AFTER_ENV, str(ALERT_AFTER))
    topic = subscribed_topic(f"alerts-{uuid.uuid4().hex[:8]}")
    alerts_log = tmp_path / "alerts.log"
    ticks = pool_sensor_ticks(settings, alerts_log, topic.topic_arn)

    healthy = ticks.tick()
    assert healthy.asset_events  # it read the pool
    assert logged_alerts(alerts_log) == []

    crash_server(paths)
    first_failed = ticks.tick()
    failed_at = time.monotonic()
    assert "registry unreachable: RegistryUnreachableError" in str(first_failed.skip_reason)
    assert logged_alerts(alerts_log) == []  # within the bound: a failover may end by itself

    time.sleep(max(0.0, ALERT_AFTER - (time.monotonic() - failed_at)) + 0.2)
    for _ in range(3):  # past the bound: one alert, however many ticks fail
        ticks.tick()
    (paged,) = logged_alerts(alerts_log)
    assert paged["title"] == UNREACHABLE_TITLE
    assert paged["severity"] == "critical"
    assert "Can't connect" in paged["cause"]
    assert paged["figures"]["unreachable_seconds"] >= ALERT_AFTER
    assert paged["figures"]["alert_after_seconds"] == ALERT_AFTER
    assert paged["runbook"] == "docs/operations/alerts.md#registry-unreachable"

    ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
    recovered = ticks.tick()
    assert recovered.asset_events  # reading the pool again
    ticks.tick()
    alerts = logged_alerts(alerts_log)
    assert [a["title"] for a in alerts] == [UNREACHABLE_TITLE, RECOVERED_TITLE]
    assert alerts[1]["severity"] == "info"
    assert "Can't connect" in alerts[1]["figures"]["last_cause"]
    # The same two went out on SNS, the production channel.
    subjects = [envelope["Subject"] for envelope in topic.envelopes()]
    assert len(subjects) == 2
    assert UNREACHABLE_TITLE in subjects[0] and RECOVERED_TITLE in subjects[1]


def test_an_outage_shorter_than_the_bound_pages_no_one(private_registry, tmp_path, monkeypatch):
    settings, paths = private_registry
    monkeypatch.delenv(ALERT_AFTER_ENV, raising=False)  # the default, 5 minutes
    alerts_log = tmp_path / "alerts.log"
    ticks = pool_sensor_ticks(settings, alerts_log)
    ticks.tick()
    crash_server(paths)
    assert "registry unreachable" in str(ticks.tick().skip_reason)
    ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
    assert ticks.tick().asset_events
    assert logged_alerts(alerts_log) == []
    assert '"registry_down_since": null' in ticks.cursor


def test_the_bound_comes_from_the_environment_and_bad_values_are_named():
    assert alert_after_seconds({}) == DEFAULT_ALERT_AFTER_SECONDS == 300
    assert alert_after_seconds({ALERT_AFTER_ENV: "90"}) == 90
    for bad in ("soon", "-1", "nan", "1e9"):
        with pytest.raises(InvalidSettingError, match=ALERT_AFTER_ENV):
            alert_after_seconds({ALERT_AFTER_ENV: bad})


def test_a_watermark_check_rides_out_a_registry_down_when_it_starts(
    private_registry, caplog, monkeypatch
):
    """The pool's asset checks hold a connection of their own: a check evaluated while the
    server is stopped waits for it (`ride_out`) instead of failing at once."""
    settings, paths = private_registry
    monkeypatch.setenv(OUTAGE_ENV, "120")
    caplog.set_level(logging.WARNING, logger="idminter_pipeline.registry.outage")
    stop_server(paths)
    database = RegistryDatabase.from_settings(settings)
    with ThreadPoolExecutor(1) as thread:
        checking = thread.submit(_watermark_check, database, POOL.low_watermark, "low")
        deadline = time.monotonic() + 120
        while "while checking the pool's low watermark" not in caplog.text:
            assert not checking.done(), checking.exception()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
        result = checking.result(timeout=300)
    assert result.passed
    assert result.metadata["free_at_least"].value == POOL.low_watermark + 1
