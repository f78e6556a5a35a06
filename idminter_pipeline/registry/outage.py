"""Riding out registry outages: a failover, a restarted server, a dropped connection.

An Aurora failover leaves the writer unreachable (or read-only) for 30 s or more. Minting,
lookups, the pool top-up and the pool's health figures retry the unit of work they were doing (a
mint transaction, a top-up, a health read) on a fresh connection, with jittered exponential
backoff (tenacity), for at most the outage bound: `IDMINTER_REGISTRY_OUTAGE_SECONDS`, or a
parameter, default 60 s. After that they raise one `RegistryOutageError` naming the bound and the
last error. The bound is counted from the first failure of the current outage; an attempt under
way when it runs out (a connect waits up to its `connect_timeout`) is allowed to finish.

Only errors that mean "the server is away" count: refused or timed-out connections, a connection
lost mid-query, a server shutting down, a killed session, and a writer that has turned read-only
(an Aurora failover in progress). "Access denied", a malformed secret, SQL errors and bad input
are never retried here; nor is a statement too large for the server's `max_allowed_packet`
(error 1153, or `StatementTooLargeError`): statements are sized to the server and a connection
that knows the limit refuses a larger one before sending it (`registry.packets`), so the "gone
away" a MySQL server answers to an oversized packet never reaches this retry loop.

Retrying is safe because every unit retried is idempotent: a mint transaction is redone from its
lookup (see `Minter` for a commit whose acknowledgement was lost), a top-up re-counts the pool under
its lock and adds only what is missing, and the health figures only read.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import pymysql
from tenacity import RetryCallState, Retrying, retry_if_exception

from idminter_pipeline.core.errors import (
    InvalidInputError,
    RegistryOutageError,
    RegistryUnreachableError,
)
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import env_seconds

logger = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_ENV = "IDMINTER_REGISTRY_OUTAGE_SECONDS"
DEFAULT_OUTAGE_SECONDS = 60.0
MAX_OUTAGE_SECONDS = 3600.0
# Full-jitter exponential backoff while the registry is away: up to 0.25 s, doubling to 5 s.
OUTAGE_BACKOFF_SECONDS = 0.25
OUTAGE_MAX_BACKOFF_SECONDS = 5.0

# Client errors: can't connect (2002 socket, 2003 TCP), unknown host (2005, DNS during a failover),
# server gone away (2006), lost connection during a query (2013), commands out of sync after a
# broken read (2014), lost connection (2055). Server errors: shutdown in progress (1053), this
# session killed (1927, MariaDB), and a read-only writer (1290 --read-only, 1836 read-only mode),
# which is what an Aurora instance being demoted answers to a write.
_OUTAGE_CODES = frozenset({2002, 2003, 2005, 2006, 2013, 2014, 2055, 1053, 1927, 1290, 1836})


def is_outage(error: BaseException | None) -> bool:
    """Whether `error` means the registry is away, so that retrying later may succeed."""
    if isinstance(error, RegistryUnreachableError):
        return True
    if isinstance(error, pymysql.err.InterfaceError):  # the client's socket is already closed
        return True
    if isinstance(error, pymysql.err.OperationalError | pymysql.err.InternalError):
        return bool(error.args) and error.args[0] in _OUTAGE_CODES
    return isinstance(error, ConnectionError)


def outage_bound(seconds: float | None = None, environ: Mapping[str, str] | None = None) -> float:
    """The outage bound in seconds: `seconds` if given, else `IDMINTER_REGISTRY_OUTAGE_SECONDS`,
    else 60. Refused (naming the value) unless a finite number from 0 to 3600; 0 fails at once."""
    if seconds is not None:
        return _checked_bound("outage_seconds", seconds, seconds)
    return env_seconds(environ, OUTAGE_ENV, DEFAULT_OUTAGE_SECONDS, maximum=MAX_OUTAGE_SECONDS)


def _checked_bound(where: str, value: object, shown: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_OUTAGE_SECONDS
    ):
        raise InvalidInputError(
            f"{where} {excerpt(shown)}: expected a number of seconds from 0 to "
            f"{MAX_OUTAGE_SECONDS:g}"
        )
    return float(value)


class RetryBudget:
    """What one call may spend on retries: `max_attempts` attempts for contention (whatever
    `contention_wait` returns between them), and `bound_seconds` of outage with jittered
    exponential backoff. Used as tenacity's `stop` and `wait`."""

    def __init__(
        self,
        bound_seconds: float,
        *,
        max_attempts: int = 1,
        contention_wait: Callable[[RetryCallState], float] | None = None,
    ) -> None:
        self.bound_seconds = bound_seconds
        self.max_attempts = max_attempts
        self._contention_wait = contention_wait
        self._outage_started: float | None = None
        self.outage_failures = 0
        self.contention_failures = 0

    def _outage(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if not is_outage(error):
            self._outage_started = None
            return False
        if self._outage_started is None:
            self._outage_started = time.monotonic()
        return True

    def wait(self, state: RetryCallState) -> float:
        if self._outage(state):
            ceiling = OUTAGE_BACKOFF_SECONDS * 2 ** min(self.outage_failures, 16)
            return random.uniform(0, min(OUTAGE_MAX_BACKOFF_SECONDS, ceiling))
        return self._contention_wait(state) if self._contention_wait else 0.0

    def stop(self, state: RetryCallState) -> bool:
        if self._outage(state):
            self.outage_failures += 1
            started = self._outage_started or time.monotonic()
            return time.monotonic() - started + state.upcoming_sleep > self.bound_seconds
        self.contention_failures += 1
        return self.contention_failures >= self.max_attempts

    def outage_error(self, what: str, error: BaseException) -> RegistryOutageError:
        return RegistryOutageError(self.bound_seconds, what, self.outage_failures, str(error))


def log_outage_retry(what: str, bound_seconds: float) -> Callable[[RetryCallState], None]:
    """A tenacity `before_sleep` that says what is retried, why, and for how long at most."""

    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if is_outage(error):
            logger.warning(
                "registry unreachable while %s (%s); retrying in %.1fs (outage bound %gs, %s)",
                what,
                error,
                state.upcoming_sleep,
                bound_seconds,
                OUTAGE_ENV,
            )

    return log


def ride_out(
    work: Callable[[], T],
    *,
    what: str,
    bound_seconds: float | None = None,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """`work()`, retried while the registry is away, for at most the outage bound.

    `work` must be safe to run again after a failure (open its own connections, be idempotent).
    `before_retry` runs before each retry (to drop a broken connection, say). Raises
    `RegistryOutageError` once the bound is spent; every other error propagates at once.
    """
    bound = outage_bound(bound_seconds)
    budget = RetryBudget(bound)
    announce = log_outage_retry(what, bound)

    def before_sleep(state: RetryCallState) -> None:
        announce(state)
        if before_retry is not None:
            before_retry()

    retrying = Retrying(
        retry=retry_if_exception(is_outage),
        stop=budget.stop,
        wait=budget.wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(work)
    except Exception as error:
        if is_outage(error):
            raise budget.outage_error(what, error) from error
        raise
