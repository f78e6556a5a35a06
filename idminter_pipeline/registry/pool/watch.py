"""What the pool sensor decides on each tick, free of Dagster so it can be reasoned about alone.

A *low-water episode* starts when the free pool drops below the low watermark and ends when it is
back at or above it. Per episode: one replenishment request, one warning alert, and one critical
alert if it also drops below the critical watermark. Separately, one critical alert each time the
forecast (free IDs / IDs minted in the last hour) says the pool empties within the horizon.
The state lives in the sensor cursor as JSON.

The sensor's counts are bounded (see `watch_pool`) by the largest figure a decision needs. Free
IDs: the low watermark, or the IDs the previous tick's mint rate would consume within the
horizon (at most the pool target), so a fast-draining pool is forecast exactly. IDs minted in
the last hour: target / horizon, beyond which even a full pool empties within the horizon.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.registry.pool.health import PoolWatch
from idminter_pipeline.registry.pool.top_up import PoolSettings

ALERT_SOURCE = "idminter-pipeline/pool_size_sensor"


class AlertKind(StrEnum):
    LOW = "low"
    CRITICAL = "critical"
    FORECAST = "forecast"


@dataclass(frozen=True)
class WatchState:
    episode: int = 0
    in_episode: bool = False
    alerted: tuple[str, ...] = ()
    forecast_alerted: bool = False
    minted_last_hour: int = 0

    @classmethod
    def from_cursor(cls, cursor: str | None) -> WatchState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(
            episode=int(data.get("episode", 0)),
            in_episode=bool(data.get("in_episode", False)),
            alerted=tuple(data.get("alerted", ())),
            forecast_alerted=bool(data.get("forecast_alerted", False)),
            minted_last_hour=int(data.get("minted_last_hour", 0)),
        )

    def to_cursor(self) -> str:
        return json.dumps({**asdict(self), "alerted": list(self.alerted)}, sort_keys=True)

    def after_alert(self, kind: AlertKind) -> WatchState:
        """The state once an alert of `kind` was delivered (undelivered ones are retried)."""
        if kind is AlertKind.FORECAST:
            return replace(self, forecast_alerted=True)
        # A critical alert covers the warning: the pool is below both watermarks.
        kinds = {kind.value} | ({AlertKind.LOW.value} if kind is AlertKind.CRITICAL else set())
        return replace(self, alerted=tuple(sorted(set(self.alerted) | kinds)))

    def run_key(self) -> str:
        return f"pool-low-water-{self.episode}"


@dataclass(frozen=True)
class WatchDecision:
    state: WatchState
    request_replenishment: bool
    alerts: list[tuple[AlertKind, Alert]] = field(default_factory=list)
    summary: str = ""


def watch_caps(state: WatchState, settings: PoolSettings) -> tuple[int, int]:
    """(free_cap, minted_cap) for this tick's `watch_pool`."""
    needed_for_forecast = math.ceil(state.minted_last_hour * settings.forecast_horizon_hours)
    free_cap = max(settings.low_watermark, min(needed_for_forecast, settings.target_free))
    # Past target / horizon IDs an hour even a full pool empties within the horizon, so the
    # exact rate beyond that changes no decision: the count can stop there.
    minted_cap = math.ceil(settings.target_free / max(settings.forecast_horizon_hours, 1.0))
    return free_cap, minted_cap


def _figures(watch: PoolWatch, settings: PoolSettings, database: str) -> dict[str, object]:
    hours = watch.hours_until_empty()
    if hours is None:
        hours_shown: object = "no forecast"
    elif watch.minted_is_exact:
        hours_shown = round(hours, 2)
    else:  # the rate is a lower bound, so the time left is an upper bound
        hours_shown = f"less than {hours:.2f}"
    return {
        "database": database,
        "free": watch.free if watch.free_is_exact else f"more than {watch.free_cap}",
        "low_watermark": settings.low_watermark,
        "critical_watermark": settings.critical_watermark,
        "target_free": settings.target_free,
        "minted_last_hour": (
            watch.minted_last_hour if watch.minted_is_exact else f"more than {watch.minted_cap}"
        ),
        "hours_until_empty": hours_shown,
        "forecast_horizon_hours": settings.forecast_horizon_hours,
    }


def assess(
    watch: PoolWatch,
    state: WatchState,
    settings: PoolSettings,
    *,
    database: str,
    replenishment_job: str,
) -> WatchDecision:
    free = watch.free
    exact = watch.free_is_exact
    critical = exact and free < settings.critical_watermark
    low = exact and free < settings.low_watermark
    new_state = replace(state, minted_last_hour=watch.minted_last_hour)
    request = False
    if low and not state.in_episode:
        new_state = replace(new_state, episode=state.episode + 1, in_episode=True, alerted=())
        request = True
    elif not low and state.in_episode:
        new_state = replace(new_state, in_episode=False, alerted=())

    figures = _figures(watch, settings, database)
    top_up_command = f"idminter pool top-up --target {settings.target_free}"
    run_note = (
        f"A {replenishment_job} run (run key {new_state.run_key()}) was requested when this "
        "episode began"
    )
    alerts: list[tuple[AlertKind, Alert]] = []
    if critical and AlertKind.CRITICAL.value not in new_state.alerted:
        alerts.append(
            (
                AlertKind.CRITICAL,
                Alert(
                    title="Free-ID pool below critical watermark",
                    what_happened=(
                        f"The free-ID pool of {database} holds {free:,} IDs, below the critical "
                        f"watermark of {settings.critical_watermark:,}. Minting stops when it "
                        "reaches zero."
                    ),
                    figures=figures,  # type: ignore[arg-type]
                    what_to_do=(
                        f"{run_note}: check in the Dagster UI that it is running and succeeds. "
                        f"If it is not, run `{top_up_command}` now. If the pool keeps draining "
                        "this fast, raise IDMINTER_POOL_TARGET_FREE."
                    ),
                    severity=Severity.CRITICAL,
                    source=ALERT_SOURCE,
                ),
            )
        )
    elif low and AlertKind.LOW.value not in new_state.alerted:
        alerts.append(
            (
                AlertKind.LOW,
                Alert(
                    title="Free-ID pool below low watermark",
                    what_happened=(
                        f"The free-ID pool of {database} holds {free:,} IDs, below the low "
                        f"watermark of {settings.low_watermark:,}."
                    ),
                    figures=figures,  # type: ignore[arg-type]
                    what_to_do=(
                        f"{run_note} to top it up to {settings.target_free:,}; check that it "
                        f"succeeds. If it fails, run `{top_up_command}`."
                    ),
                    severity=Severity.WARNING,
                    source=ALERT_SOURCE,
                ),
            )
        )

    hours = watch.hours_until_empty()
    horizon = settings.forecast_horizon_hours
    rate = watch.minted_last_hour
    within = hours is not None and hours < horizon
    rate_shown = f"{rate:,}" if watch.minted_is_exact else f"more than {watch.minted_cap:,}"
    # Known not to empty within the horizon: no minting, or even the capped count lasts long enough.
    clear = (
        rate == 0 or (hours is not None and hours >= horizon) or watch.free_cap / rate >= horizon
    )
    if within and not state.forecast_alerted:
        alerts.append(
            (
                AlertKind.FORECAST,
                Alert(
                    title=f"Free-ID pool forecast to run out within {horizon:g} hours",
                    runbook="Free-ID pool forecast to run out within {horizon} hours",
                    what_happened=(
                        f"At the last hour's mint rate ({rate_shown} IDs/hour) the {free:,} "
                        f"free IDs of {database} last {hours:.1f} hours, less than the "
                        f"{horizon:g}-hour horizon."
                    ),
                    figures=figures,  # type: ignore[arg-type]
                    what_to_do=(
                        f"Top the pool up now (`{top_up_command}`, or materialize "
                        "canonical_id_pool) and raise IDMINTER_POOL_TARGET_FREE so a full pool "
                        f"covers at least {horizon:g} hours of minting at this rate."
                    ),
                    severity=Severity.CRITICAL,
                    source=ALERT_SOURCE,
                ),
            )
        )
    elif clear and state.forecast_alerted:
        new_state = replace(new_state, forecast_alerted=False)

    shown = f"{free:,}" if exact else f"more than {watch.free_cap:,}"
    summary = (
        f"{shown} free IDs (low watermark {settings.low_watermark:,}, critical "
        f"{settings.critical_watermark:,}); {rate_shown} minted in the last hour"
    )
    return WatchDecision(new_state, request, alerts, summary)
