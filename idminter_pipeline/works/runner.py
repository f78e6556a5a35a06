"""The one place the works pipeline is assembled: a store, the registry's minter, the churn guard
(whose trips are logged and alerted) and the downstream topic.

`open_works_pipeline` serves every front door: the Dagster assets and ops pass their resources,
and `run_from_env` (the CLI and the Lambda) passes what the environment names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from idminter_pipeline.core.alerts import AlertChannel, LogFileChannel, LoggerChannel, send_alert
from idminter_pipeline.core.errors import AlertDeliveryError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import ConnectionFactory, connection_factory
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.checkpoints import RunCheckpoints
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy, ChurnTrip
from idminter_pipeline.works.downstream import DownstreamNotifier, downstream_notifier_from_env
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, WorksPipeline
from idminter_pipeline.works.run_summary import RunSummary
from idminter_pipeline.works.stores import (
    FullScope,
    WindowScope,
    WorkScope,
    WorksStore,
    works_store_from_env,
)

logger = logging.getLogger(__name__)


class RunLog(Protocol):
    """Where a run says what went wrong: a `logging.Logger` or Dagster's `context.log`."""

    def error(self, msg: str) -> object: ...

    def warning(self, msg: str) -> object: ...


def churn_alerter(
    channels: Sequence[AlertChannel], log: RunLog, *, job_id: str | None
) -> Callable[[ChurnTrip], None]:
    """Logs every churn trip and alerts each reason once per pipeline (a multi-window run starts
    a fresh guard per window; people hear about a tripped guard once). An alert channel being
    down must not undo minting that already committed: it is a warning."""
    alerted: set[str] = set()

    def alert(trip: ChurnTrip) -> None:
        log.error(trip.reason)
        if trip.reason in alerted:
            return
        alerted.add(trip.reason)
        try:
            send_alert(trip.alert(job_id=job_id), channels)
        except AlertDeliveryError as error:
            log.warning(f"churn alert not delivered everywhere: {error}")

    return alert


@contextmanager
def open_works_pipeline(
    open_store: Callable[[], AbstractContextManager[WorksStore]],
    connect: ConnectionFactory,
    *,
    churn_guard: ChurnGuardPolicy,
    alert_channels: Sequence[AlertChannel],
    log: RunLog,
    job_id: str | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    record_processed: bool = True,
    notifier: DownstreamNotifier | None = None,
    announce_once: bool = False,
    plan_ids_scope: bool = False,
) -> Iterator[WorksPipeline]:
    """The works pipeline over an opened store and the registry's minter, both closed on exit.

    Churn trips are logged to `log` and alerted through `alert_channels` (`churn_alerter`).
    `announce_once` announces the written works after the run's last write, each canonical ID
    once; `plan_ids_scope` makes an ids scope's outcome independent of its order
    (`WorksPipeline`).
    """
    with open_store() as store, Minter(connect) as minter:
        yield WorksPipeline(
            store,
            minter,
            batch_size=batch_size,
            churn_guard=churn_guard,
            on_churn_trip=churn_alerter(alert_channels, log, job_id=job_id),
            record_processed=record_processed,
            notifier=notifier,
            announce_once=announce_once,
            plan_ids_scope=plan_ids_scope,
        )


def run_from_env(
    scope: WorkScope,
    *,
    job_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    record_processed: bool = True,
    environ: Mapping[str, str] | None = None,
    announce_once: bool = False,
    plan_ids_scope: bool = False,
    resumable: bool = True,
) -> RunSummary:
    """Mint `scope` with the store, registry, churn guard and downstream topic the environment
    names; churn alerts go to Python logging and the alert log file.

    A full scope with a job id is checkpointed (unless `resumable` is false, as for a generated
    job id): it resumes after the last batch an interrupted run with that job id wrote. A window
    is always checkpointed, keyed by the window: it resumes after the last batch an interrupted
    run of that window wrote (`works.checkpoints`).
    `announce_once` announces the written works after the run's last write, each canonical ID
    once; `plan_ids_scope` makes an ids scope's outcome independent of its order
    (`WorksPipeline`).
    """
    settings = DatabaseSettings.from_env(environ)
    # Built first, so a malformed topic ARN is refused before anything is minted or written.
    notifier = downstream_notifier_from_env(environ)
    factory = connection_factory(settings)
    resumable = isinstance(scope, WindowScope) or (
        resumable and isinstance(scope, FullScope) and job_id is not None
    )
    with (
        open_works_pipeline(
            lambda: works_store_from_env(environ),
            factory,
            churn_guard=ChurnGuardPolicy.from_env(environ),
            alert_channels=[LoggerChannel(), LogFileChannel()],
            log=logger,
            job_id=job_id,
            batch_size=batch_size,
            record_processed=record_processed,
            notifier=notifier,
            announce_once=announce_once,
            plan_ids_scope=plan_ids_scope,
        ) as pipeline,
        RunCheckpoints(factory) if resumable else nullcontext() as checkpoints,
    ):
        return pipeline.run(scope, job_id=job_id, checkpoints=checkpoints)
