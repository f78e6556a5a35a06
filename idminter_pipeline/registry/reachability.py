"""Paging someone when the registry stays unreachable, or keeps dropping away.

The pool sensor reads the registry every tick, so it is the first to know the registry is away
(the minting schedule is off by default; nothing else runs). Each tick reports whether its read
worked; this module decides, free of Dagster. An outage lasts from the first tick that fails to
the first tick that reads the registry again. Two rules page:

- **One long outage.** Once an outage has lasted `IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS`
  (default 300 s, so a failover or a restart that ends by itself pages no one): ONE critical
  alert, with the last cause; later failed ticks send nothing. The first tick that reads the
  registry again sends one resolution.
- **Many short ones (a flapping registry).** Outages each shorter than that bound, but together
  unreachable for `IDMINTER_REGISTRY_UNREACHABLE_WINDOW_PERCENT` (default 50) % of the last
  `IDMINTER_REGISTRY_UNREACHABLE_WINDOW_SECONDS` (default twice the bound): ONE critical alert
  per episode. The episode ends, with one resolution, when a whole window has passed without an
  outage. Outages the first rule paged for are not counted again, and while a flapping episode
  is paged the first rule stays quiet: one page per trouble, never two.

The state lives in the sensor's cursor, beside the pool watch's (`registry_*` keys), as wall-clock
seconds: ticks run in different processes. The window keeps only the closed outages that end
inside it. An alert that could not be delivered is not recorded as sent, so the next tick tries
again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.settings import env_int, env_seconds, environment

ALERT_AFTER_ENV = "IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS"
DEFAULT_ALERT_AFTER_SECONDS = 300.0
MAX_ALERT_AFTER_SECONDS = 7 * 24 * 3600.0
WINDOW_ENV = "IDMINTER_REGISTRY_UNREACHABLE_WINDOW_SECONDS"
WINDOW_PERCENT_ENV = "IDMINTER_REGISTRY_UNREACHABLE_WINDOW_PERCENT"
DEFAULT_WINDOW_PERCENT = 50
MAX_WINDOW_SECONDS = 7 * 24 * 3600
ALERT_SOURCE = "idminter-pipeline/pool_size_sensor"


def alert_after_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long the registry may be unreachable before someone is paged (the environment's
    `IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS`, default 300), refused unless 0 to 7 days."""
    return env_seconds(
        environ, ALERT_AFTER_ENV, DEFAULT_ALERT_AFTER_SECONDS, maximum=MAX_ALERT_AFTER_SECONDS
    )


@dataclass(frozen=True)
class PagingRules:
    """When an unreachable registry pages: after `alert_after` seconds of one outage, or when
    outages fill `window_percent` % of the last `window_seconds`."""

    alert_after: float = DEFAULT_ALERT_AFTER_SECONDS
    window_seconds: int = int(2 * DEFAULT_ALERT_AFTER_SECONDS)
    window_percent: int = DEFAULT_WINDOW_PERCENT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PagingRules:
        """The three variables; a bad value raises `InvalidSettingError` naming it."""
        env = environment(environ)
        alert_after = alert_after_seconds(env)
        default_window = max(1, math.ceil(2 * alert_after))
        return cls(
            alert_after=alert_after,
            window_seconds=env_int(
                env,
                WINDOW_ENV,
                min(default_window, MAX_WINDOW_SECONDS),
                minimum=1,
                maximum=MAX_WINDOW_SECONDS,
            ),
            window_percent=env_int(
                env, WINDOW_PERCENT_ENV, DEFAULT_WINDOW_PERCENT, minimum=1, maximum=100
            ),
        )

    @property
    def window_share_seconds(self) -> float:
        """Unreachable seconds within the window that page."""
        return self.window_seconds * self.window_percent / 100


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Tick:
    """What one tick decided: the alert to send (or None), the state to keep once it is
    delivered (or when there is none), and the state to keep if it could not be delivered (the
    next tick then decides again)."""

    state: Reachability
    alert: Alert | None = None
    undelivered: Reachability | None = None

    def kept(self, delivered: bool) -> Reachability:
        if delivered or self.undelivered is None:
            return self.state
        return self.undelivered


@dataclass(frozen=True)
class Reachability:
    """The registry as the sensor last saw it: since when it has been unreachable (None when it
    answered), whether this outage paged, its last cause; the closed outages that paged no one
    and end inside the window; and since when a flapping episode is paged (None: none is)."""

    down_since: float | None = None
    alerted: bool = False
    cause: str | None = None
    recent: tuple[tuple[float, float], ...] = field(default=())
    flapping_since: float | None = None

    @classmethod
    def from_cursor(cls, cursor: str | None) -> Reachability:
        data = json.loads(cursor) if cursor else {}
        down_since = data.get("registry_down_since")
        flapping_since = data.get("registry_flapping_since")
        return cls(
            down_since=float(down_since) if down_since is not None else None,
            alerted=bool(data.get("registry_alerted", False)),
            cause=data.get("registry_cause"),
            recent=tuple(
                (float(start), float(end)) for start, end in data.get("registry_recent_outages", [])
            ),
            flapping_since=float(flapping_since) if flapping_since is not None else None,
        )

    def into_cursor(self, cursor: str | None) -> str:
        """`cursor` (the pool watch's JSON) with this state's keys set."""
        data = json.loads(cursor) if cursor else {}
        data.update(
            registry_down_since=self.down_since,
            registry_alerted=self.alerted,
            registry_cause=self.cause,
            registry_recent_outages=[list(outage) for outage in self.recent],
            registry_flapping_since=self.flapping_since,
        )
        return json.dumps(data, sort_keys=True)

    def _within(self, now: float, rules: PagingRules) -> tuple[tuple[float, float], ...]:
        """The closed unpaged outages that end inside the window ending `now`."""
        window_start = now - rules.window_seconds
        return tuple(outage for outage in self.recent if outage[1] > window_start)

    def unreachable_in_window(self, now: float, rules: PagingRules) -> tuple[float, int]:
        """Seconds of the window ending `now` spent in outages that paged no one, and how many
        outages that was (the current one included)."""
        window_start = now - rules.window_seconds
        outages = list(self._within(now, rules))
        if self.down_since is not None and not self.alerted:
            outages.append((self.down_since, now))
        seconds = sum(max(0.0, end - max(start, window_start)) for start, end in outages)
        return seconds, len(outages)

    def after_failure(self, now: float, cause: str, *, rules: PagingRules, database: str) -> Tick:
        """The tick that could not read the registry: an outage alert once it has lasted
        `rules.alert_after`, else a flapping alert once outages fill the window's share."""
        down_since = self.down_since if self.down_since is not None else now
        state = replace(self, down_since=down_since, cause=cause, recent=self._within(now, rules))
        if self.alerted or state.flapping_since is not None:
            return Tick(state)  # this trouble has paged already
        if now - down_since >= rules.alert_after:
            alert = _unreachable_alert(down_since, now, cause, rules, database)
            return Tick(replace(state, alerted=True), alert, state)
        seconds, outages = state.unreachable_in_window(now, rules)
        if seconds >= rules.window_share_seconds:
            alert = _flapping_alert(
                now, seconds, outages, cause=cause, rules=rules, database=database
            )
            return Tick(replace(state, flapping_since=now), alert, state)
        return Tick(state)

    def after_success(self, now: float, *, rules: PagingRules, database: str) -> Tick:
        """The tick that read the registry: the outage under way (if any) ends, with a
        resolution if it paged; a paged flapping episode ends once a whole window has passed
        without an outage."""
        recent = self._within(now, rules)
        if self.down_since is not None and not self.alerted:
            recent = (*recent, (self.down_since, now))  # an unpaged outage counts in the window
        state = replace(self, down_since=None, alerted=False, cause=None, recent=recent)
        if self.down_since is not None and self.alerted:
            alert = _reachable_alert(self.down_since, now, self.cause, database)
            return Tick(state, alert, self)
        if self.flapping_since is not None and not recent:
            steady = replace(state, flapping_since=None)
            return Tick(steady, _steady_alert(self.flapping_since, now, rules, database), state)
        return Tick(state)


def _unreachable_alert(
    down_since: float, now: float, cause: str, rules: PagingRules, database: str
) -> Alert:
    return Alert(
        title="Registry unreachable",
        what_happened=(
            f"The pool sensor has not reached the registry at {database} since "
            f"{_utc(down_since)} ({now - down_since:,.0f} s, past the "
            f"{rules.alert_after:g} s of {ALERT_AFTER_ENV}). Minting, pool top-ups and "
            "checkpoints wait for it and then fail."
        ),
        what_to_do=(
            "Check the database's status (failover, maintenance, stopped instance), its "
            "network path and the secret's credentials; `idminter db status` tests a "
            "connection. A resolution alert follows when a tick reads it again."
        ),
        figures={
            "database": database,
            "unreachable_since": _utc(down_since),
            "unreachable_seconds": round(now - down_since),
            "alert_after_seconds": rules.alert_after,
        },
        severity=Severity.CRITICAL,
        source=ALERT_SOURCE,
        cause=cause,
    )


def _reachable_alert(down_since: float, now: float, cause: str | None, database: str) -> Alert:
    return Alert(
        title="Registry reachable again",
        what_happened=(
            f"The pool sensor reads the registry at {database} again, after "
            f"{now - down_since:,.0f} s unreachable (since {_utc(down_since)})."
        ),
        what_to_do=(
            "Nothing for the registry itself. Runs that failed while it was away "
            "(RegistryOutageError) can be re-run: minting is idempotent, and a full run "
            "with a job id resumes after its last written batch."
        ),
        figures={
            "database": database,
            "unreachable_since": _utc(down_since),
            "unreachable_seconds": round(now - down_since),
            "last_cause": cause,
        },
        severity=Severity.INFO,
        source=ALERT_SOURCE,
    )


def _flapping_alert(
    now: float, seconds: float, outages: int, *, cause: str, rules: PagingRules, database: str
) -> Alert:
    percent = 100 * seconds / rules.window_seconds
    return Alert(
        title="Registry flapping",
        what_happened=(
            f"The pool sensor could not reach the registry at {database} for {seconds:,.0f} s "
            f"of the last {rules.window_seconds:,} s ({percent:.0f} %, at least the "
            f"{rules.window_percent} % of {WINDOW_PERCENT_ENV}), in {outages} outage(s), each "
            f"shorter than the {rules.alert_after:g} s after which one outage pages "
            f"({ALERT_AFTER_ENV}). Every outage longer than IDMINTER_REGISTRY_OUTAGE_SECONDS "
            "fails the minting runs, Lambda batches and top-ups under way."
        ),
        what_to_do=(
            "Check why the database keeps dropping away: repeated failovers or restarts, a "
            "connection limit reached, a flapping network path. No separate page follows if "
            "it now stays down; a resolution follows once a whole window passes without an "
            "outage."
        ),
        figures={
            "database": database,
            "window_seconds": rules.window_seconds,
            "unreachable_seconds": round(seconds),
            "unreachable_percent": round(percent, 1),
            "outages": outages,
            "window_percent": rules.window_percent,
            "alert_after_seconds": rules.alert_after,
            "since": _utc(now),
        },
        severity=Severity.CRITICAL,
        source=ALERT_SOURCE,
        cause=cause,
    )


def _steady_alert(flapping_since: float, now: float, rules: PagingRules, database: str) -> Alert:
    return Alert(
        title="Registry steady again",
        what_happened=(
            f"The pool sensor has read the registry at {database} on every tick of the last "
            f"{rules.window_seconds:,} s, after it kept dropping away (paged at "
            f"{_utc(flapping_since)})."
        ),
        what_to_do=(
            "Nothing for the registry itself. Re-run the Dagster runs that failed with "
            "RegistryOutageError meanwhile (minting is idempotent) and redrive the Lambda's "
            "dead-letter queue."
        ),
        figures={
            "database": database,
            "flapping_since": _utc(flapping_since),
            "flapping_seconds": round(now - flapping_since),
            "window_seconds": rules.window_seconds,
        },
        severity=Severity.INFO,
        source=ALERT_SOURCE,
    )
