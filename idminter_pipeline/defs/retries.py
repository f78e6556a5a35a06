"""What Dagster retries, by failure kind, and what it does not.

- **A registry outage** (`RegistryOutageError`: the registry stayed away past the outage bound
  the domain code rides out; `RegistryUnreachableError`: a connection refused as unreachable):
  the step that met it is
  retried in the same run, `IDMINTER_OUTAGE_STEP_RETRIES` times (default 2), each after
  `IDMINTER_OUTAGE_STEP_RETRY_SECONDS` (default 60). Minting, top-ups and reconciliation are
  idempotent, so a step redone from its start redoes nothing wrong. The run fails, and pages,
  only when the last attempt met the outage too.
- **Everything else a step raises** (works that failed, a blocking check, an empty pool, a bug)
  is final for the run: retrying would fail the same way, or (an empty pool) is the
  pool-exhaustion recovery's job.
- **A run that failed outside its steps** (its ECS task stopped, its worker lost) is re-executed
  whole by the run retry daemon (`run_retries` in deploy/dagster.yaml, with
  `retry_on_asset_or_op_failure: false` so that it leaves step failures alone). Dagster tags
  such a failed run `dagster/will_retry=true`; the failure sensors page only for a run that will
  not be retried (`will_be_retried`), so one failure pages once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from idminter_pipeline.core.errors import RegistryOutageError, RegistryUnreachableError
from idminter_pipeline.core.settings import env_int

OUTAGE_STEP_RETRIES_ENV = "IDMINTER_OUTAGE_STEP_RETRIES"
OUTAGE_STEP_RETRY_SECONDS_ENV = "IDMINTER_OUTAGE_STEP_RETRY_SECONDS"
DEFAULT_OUTAGE_STEP_RETRIES = 2
DEFAULT_OUTAGE_STEP_RETRY_SECONDS = 60
MAX_OUTAGE_STEP_RETRIES = 10
MAX_OUTAGE_STEP_RETRY_SECONDS = 3600


@dataclass(frozen=True)
class OutageRetries:
    """How often, and after how long, a step that met a registry outage is retried."""

    retries: int = DEFAULT_OUTAGE_STEP_RETRIES
    wait_seconds: int = DEFAULT_OUTAGE_STEP_RETRY_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutageRetries:
        """The two variables; a bad value raises `InvalidSettingError` naming it."""
        env = os.environ if environ is None else environ
        return cls(
            retries=env_int(
                env,
                OUTAGE_STEP_RETRIES_ENV,
                DEFAULT_OUTAGE_STEP_RETRIES,
                minimum=0,
                maximum=MAX_OUTAGE_STEP_RETRIES,
            ),
            wait_seconds=env_int(
                env,
                OUTAGE_STEP_RETRY_SECONDS_ENV,
                DEFAULT_OUTAGE_STEP_RETRY_SECONDS,
                minimum=0,
                maximum=MAX_OUTAGE_STEP_RETRY_SECONDS,
            ),
        )


def is_registry_outage(error: BaseException) -> bool:
    """Whether a step's error means the registry was away (and a later attempt may succeed):
    the registry's own typed errors only, never a bare connection error, which may be the
    works store's or a topic's."""
    return isinstance(error, RegistryOutageError | RegistryUnreachableError)


@contextmanager
def retried_on_registry_outage() -> Iterator[None]:
    """Run a step's body; a registry outage asks Dagster to retry the step (module docstring),
    every other error propagates as it is."""
    policy = OutageRetries.from_env()  # a bad value fails the step at once, naming it
    try:
        yield
    except Exception as error:
        if not is_registry_outage(error):
            raise
        raise dg.RetryRequested(
            max_retries=policy.retries, seconds_to_wait=policy.wait_seconds
        ) from error


def will_be_retried(run: dg.DagsterRun) -> bool:
    """Whether the run retry daemon re-executes this failed run (Dagster tags the run when its
    failure is recorded): its failure is not final, so nobody is paged for it."""
    return run.tags.get(WILL_RETRY_TAG, "").lower() == "true"


def retried_run_skip(run: dg.DagsterRun) -> dg.SkipReason | None:
    """A failure sensor's skip for a run that will be retried, else None."""
    if will_be_retried(run):
        return dg.SkipReason(
            f"run {run.run_id} will be retried by the run retry daemon; only its last failure pages"
        )
    return None
