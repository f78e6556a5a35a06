"""A flapping registry pages someone: outages each shorter than
`IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS` that together keep the registry unreachable for a
share of a sliding window send one critical alert per episode, and one resolution once a whole
window passes without an outage. A single long outage still pages once by its length, never a
second time by the window.

The rules are played tick by tick on a simulated clock (the reproduction's figures), and once on
a private MariaDB that is SIGKILLed and restarted under the pool sensor."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dagster_helpers import POOL, logged_alerts, pool_sensor_ticks
from db_helpers import private_mariadb, registry_on_private_server

from benchmarks.crash_runs import crash_server
from idminter_pipeline.core.errors import InvalidSettingError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.local_servers.mariadb import ensure_server
from idminter_pipeline.registry.reachability import (
    ALERT_AFTER_ENV,
    WINDOW_ENV,
    WINDOW_PERCENT_ENV,
    PagingRules,
    Reachability,
)

# Its servers are private ones, started by its own fixtures.
pytestmark = pytest.mark.uses_database

DATABASE = "registry.example:3306/identifiers as user 'id_minter'"


def _play(rules: PagingRules, timeline: list[tuple[float, bool]]) -> list[tuple[float, str]]:
    """Each tick (time, reached the registry?) through the rules, its cursor carried like the
    daemon carries it; every alert sent, with its time."""
    cursor: str | None = None
    sent: list[tuple[float, str]] = []
    for now, reached in timeline:
        state = Reachability.from_cursor(cursor)
        if reached:
            tick = state.after_success(now, rules=rules, database=DATABASE)
        else:
            tick = state.after_failure(
                now, "OperationalError: (2003)", rules=rules, database=DATABASE
            )
        if tick.alert is not None:
            sent.append((now, tick.alert.title))
        cursor = tick.kept(delivered=True).into_cursor(cursor)
    return sent


def _flapping(outages: int, down: int, up: int, *, then_up: int) -> list[tuple[float, bool]]:
    """One tick a second: `outages` outages of `down` s with `up` s reachable between them,
    then `then_up` s reachable."""
    timeline: list[tuple[float, bool]] = [(float(t), True) for t in range(10)]
    now = 10
    for _ in range(outages):
        timeline += [(float(now + t), False) for t in range(down)]
        now += down
        timeline += [(float(now + t), True) for t in range(up)]
        now += up
    timeline += [(float(now + t), True) for t in range(then_up)]
    return timeline


def test_five_short_outages_in_a_row_page_once_and_resolve_once():
    """Five outages of 15 s with 3 s up between them, the outage bound 20 s: none pages by its
    length, the window pages once, and a window without an outage resolves it."""
    rules = PagingRules.from_env({ALERT_AFTER_ENV: "20"})
    assert (rules.window_seconds, rules.window_percent) == (40, 50)
    sent = _play(rules, _flapping(5, 15, 3, then_up=60))
    assert [title for _, title in sent] == ["Registry flapping", "Registry steady again"]
    paged_at, resolved_at = sent[0][0], sent[1][0]
    assert paged_at < 10 + 2 * 18  # within the second outage
    last_outage_end = 10 + 5 * 18 - 3
    assert resolved_at >= last_outage_end + rules.window_seconds


def test_one_long_outage_pages_by_its_length_only():
    rules = PagingRules.from_env({ALERT_AFTER_ENV: "20"})
    sent = _play(rules, _flapping(1, 50, 0, then_up=120))
    assert [title for _, title in sent] == ["Registry unreachable", "Registry reachable again"]


def test_a_flapping_episode_that_turns_into_a_long_outage_pages_once():
    rules = PagingRules.from_env({ALERT_AFTER_ENV: "20"})
    timeline = _flapping(3, 15, 3, then_up=0)
    start = timeline[-1][0] + 1
    timeline += [(start + t, False) for t in range(100)]
    timeline += [(start + 100 + t, True) for t in range(60)]
    sent = _play(rules, timeline)
    assert [title for _, title in sent] == ["Registry flapping", "Registry steady again"]


def test_rare_short_outages_page_no_one():
    rules = PagingRules.from_env({ALERT_AFTER_ENV: "20"})
    assert _play(rules, _flapping(6, 10, 30, then_up=60)) == []


def test_an_undelivered_flapping_alert_is_sent_again_next_tick():
    rules = PagingRules.from_env({ALERT_AFTER_ENV: "20"})
    state = Reachability()
    titles = []
    for now in range(30):
        tick = state.after_failure(float(now), "cause", rules=rules, database=DATABASE)
        if tick.alert is not None:
            titles.append(tick.alert.title)
        state = tick.kept(delivered=False)
    assert titles == ["Registry unreachable"] * 10  # every tick past the bound tries again


def test_the_window_settings_come_from_the_environment_and_bad_values_are_named():
    assert PagingRules.from_env({}) == PagingRules(300.0, 600, 50)
    rules = PagingRules.from_env({WINDOW_ENV: "900", WINDOW_PERCENT_ENV: "30"})
    assert (rules.window_seconds, rules.window_percent) == (900, 30)
    assert rules.window_share_seconds == 270
    for name, bad in (
        (WINDOW_ENV, "0"),
        (WINDOW_ENV, "ten"),
        (WINDOW_ENV, "1.5"),
        (WINDOW_PERCENT_ENV, "0"),
        (WINDOW_PERCENT_ENV, "101"),
        (WINDOW_PERCENT_ENV, "50%"),
    ):
        with pytest.raises(InvalidSettingError, match=name):
            PagingRules.from_env({name: bad})


# -- the pool sensor against a registry that keeps dropping away ---------------------------------


@pytest.fixture
def flapping_registry(tmp_path_factory) -> Iterator[tuple[DatabaseSettings, object]]:
    with (
        private_mariadb(tmp_path_factory.mktemp("flapping-mariadb")) as (server, paths),
        registry_on_private_server(server, paths, "flap_", POOL.target_free) as settings,
    ):
        yield settings, paths


@pytest.mark.slow(seconds=20)
def test_the_pool_sensor_pages_once_for_a_registry_that_keeps_dropping_away(
    flapping_registry, tmp_path, monkeypatch
):
    settings, paths = flapping_registry
    alert_after, window, percent, down_seconds = 30, 12, 25, 2
    monkeypatch.setenv(ALERT_AFTER_ENV, str(alert_after))
    monkeypatch.setenv(WINDOW_ENV, str(window))
    monkeypatch.setenv(WINDOW_PERCENT_ENV, str(percent))
    alerts_log = tmp_path / "alerts.log"
    tick = pool_sensor_ticks(settings, alerts_log).tick

    def titles() -> list[str]:
        return [alert["title"] for alert in logged_alerts(alerts_log)]

    assert tick().asset_events
    outages = []
    # Short outages, a tick or two of reachable registry between them, until the share of the
    # window they fill pages (two do; the time a restart takes is not counted as down, as no
    # tick runs then, so up to eight are allowed).
    for _ in range(8):
        crash_server(paths)
        started = time.monotonic()
        while time.monotonic() - started < down_seconds:
            assert "registry unreachable" in str(tick().skip_reason)
        ensure_server(DatabaseSettings(port=settings.port), paths, start_local=True)
        assert tick().asset_events
        outages.append(time.monotonic() - started)
        tick()
        if titles():
            break
    assert max(outages) < alert_after  # none long enough to page by its length
    assert titles() == ["Registry flapping"]
    (paged,) = logged_alerts(alerts_log)
    assert paged["severity"] == "critical"
    assert paged["figures"]["window_seconds"] == window
    assert paged["figures"]["unreachable_percent"] >= percent
    assert "Can't connect" in paged["cause"]
    assert paged["runbook"] == "docs/operations/alerts.md#registry-flapping"

    steady_since = time.monotonic()
    while time.monotonic() - steady_since < window + 1:
        assert tick().asset_events
        time.sleep(0.5)
    assert titles() == ["Registry flapping", "Registry steady again"]
