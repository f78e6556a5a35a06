"""Paging someone when the registry stays unreachable: one alert per outage, one when it ends.

The pool sensor reads the registry every tick, so it is the first to know the registry is away
(the minting schedule is off by default; nothing else runs). Each tick reports whether its read
worked; this module decides, free of Dagster:

- the first failed tick starts an outage (its time is kept, with the cause);
- once the outage has lasted `IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS` (default 300 s, so a
  failover or a restart that ends by itself pages no one), ONE critical alert, with the last
  cause; later failed ticks send nothing;
- the first tick that reads the registry again ends the outage, and sends one resolution if an
  alert went out.

The state lives in the sensor's cursor, beside the pool watch's (`registry_*` keys), as wall-clock
seconds: ticks run in different processes. An alert that could not be delivered is not recorded
as sent, so the next tick tries again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from idminter_pipeline.core.alerts import Alert, Severity
from idminter_pipeline.core.settings import env_seconds

ALERT_AFTER_ENV = "IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS"
DEFAULT_ALERT_AFTER_SECONDS = 300.0
MAX_ALERT_AFTER_SECONDS = 7 * 24 * 3600.0
ALERT_SOURCE = "idminter-pipeline/pool_size_sensor"


def alert_after_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long the registry may be unreachable before someone is paged (the environment's
    `IDMINTER_REGISTRY_UNREACHABLE_ALERT_SECONDS`, default 300), refused unless 0 to 7 days."""
    return env_seconds(
        environ, ALERT_AFTER_ENV, DEFAULT_ALERT_AFTER_SECONDS, maximum=MAX_ALERT_AFTER_SECONDS
    )


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Reachability:
    """The registry as the sensor last saw it: since when it has been unreachable (None when it
    answered), whether this outage was alerted, and its last cause."""

    down_since: float | None = None
    alerted: bool = False
    cause: str | None = None

    @classmethod
    def from_cursor(cls, cursor: str | None) -> Reachability:
        data = json.loads(cursor) if cursor else {}
        down_since = data.get("registry_down_since")
        return cls(
            down_since=float(down_since) if down_since is not None else None,
            alerted=bool(data.get("registry_alerted", False)),
            cause=data.get("registry_cause"),
        )

    def into_cursor(self, cursor: str | None) -> str:
        """`cursor` (the pool watch's JSON) with this state's keys set."""
        data = json.loads(cursor) if cursor else {}
        data.update(
            registry_down_since=self.down_since,
            registry_alerted=self.alerted,
            registry_cause=self.cause,
        )
        return json.dumps(data, sort_keys=True)

    def after_failure(
        self, now: float, cause: str, *, alert_after: float, database: str
    ) -> tuple[Reachability, Alert | None]:
        """The state after a tick that could not read the registry, and the alert to send (once
        per outage, when it has lasted `alert_after` seconds)."""
        down_since = self.down_since if self.down_since is not None else now
        state = replace(self, down_since=down_since, cause=cause)
        if self.alerted or now - down_since < alert_after:
            return state, None
        return state, Alert(
            title="Registry unreachable",
            what_happened=(
                f"The pool sensor has not reached the registry at {database} since "
                f"{_utc(down_since)} ({now - down_since:,.0f} s, past the "
                f"{alert_after:g} s of {ALERT_AFTER_ENV}). Minting, pool top-ups and "
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
                "alert_after_seconds": alert_after,
            },
            severity=Severity.CRITICAL,
            source=ALERT_SOURCE,
            cause=cause,
        )

    def after_success(self, now: float, *, database: str) -> tuple[Reachability, Alert | None]:
        """The state after a tick that read the registry; a resolution if an alert went out."""
        if self.down_since is None:
            return self, None
        resolved = Reachability()
        if not self.alerted:
            return resolved, None  # shorter than the alert bound: nobody was paged
        return resolved, Alert(
            title="Registry reachable again",
            what_happened=(
                f"The pool sensor reads the registry at {database} again, after "
                f"{now - self.down_since:,.0f} s unreachable (since {_utc(self.down_since)})."
            ),
            what_to_do=(
                "Nothing for the registry itself. Runs that failed while it was away "
                "(RegistryOutageError) can be re-run: minting is idempotent, and a full run "
                "with a job id resumes after its last written batch."
            ),
            figures={
                "database": database,
                "unreachable_since": _utc(self.down_since),
                "unreachable_seconds": round(now - self.down_since),
                "last_cause": self.cause,
            },
            severity=Severity.INFO,
            source=ALERT_SOURCE,
        )

    def after_alert(self) -> Reachability:
        """The state once the outage alert was delivered."""
        return replace(self, alerted=True)
