"""Run the works pipeline outside Dagster (CLI, Lambda): settings from the environment."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext

from idminter_pipeline.core.alerts import LogFileChannel, LoggerChannel, send_alert
from idminter_pipeline.core.errors import AlertDeliveryError
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry.connection import connection_factory
from idminter_pipeline.registry.minting import Minter
from idminter_pipeline.works.checkpoints import FullRunCheckpoints
from idminter_pipeline.works.churn_guard import ChurnGuardPolicy, ChurnTrip
from idminter_pipeline.works.downstream import downstream_notifier_from_env
from idminter_pipeline.works.pipeline import DEFAULT_BATCH_SIZE, RunSummary, WorksPipeline
from idminter_pipeline.works.stores import FullScope, WorkScope, works_store_from_env

logger = logging.getLogger(__name__)


def _alert_churn(job_id: str | None) -> object:
    def alert(trip: ChurnTrip) -> None:
        logger.error(trip.reason)
        try:
            send_alert(trip.alert(job_id=job_id), [LoggerChannel(), LogFileChannel()])
        except AlertDeliveryError as error:
            logger.warning("churn alert not delivered everywhere: %s", error)

    return alert


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
    names.

    A full scope with a job id is checkpointed (unless `resumable` is false, as for a generated
    job id): it resumes after the last batch an interrupted run with that job id wrote.
    `announce_once` announces the written works after the run's last write, each canonical ID
    once; `plan_ids_scope` makes an ids scope's outcome independent of its order
    (`WorksPipeline`).
    """
    settings = DatabaseSettings.from_env(environ)
    # Built first, so a malformed topic ARN is refused before anything is minted or written.
    notifier = downstream_notifier_from_env(environ)
    factory = connection_factory(settings)
    resumable = resumable and isinstance(scope, FullScope) and job_id is not None
    with (
        works_store_from_env(environ) as store,
        Minter(factory) as minter,
        FullRunCheckpoints(factory) if resumable else nullcontext() as checkpoints,
    ):
        return WorksPipeline(
            store,
            minter,
            batch_size=batch_size,
            churn_guard=ChurnGuardPolicy.from_env(environ),
            on_churn_trip=_alert_churn(job_id),  # type: ignore[arg-type]
            record_processed=record_processed,
            notifier=notifier,
            announce_once=announce_once,
            plan_ids_scope=plan_ids_scope,
        ).run(scope, job_id=job_id, checkpoints=checkpoints)
