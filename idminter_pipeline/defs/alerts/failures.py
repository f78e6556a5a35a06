"""What a failed run's records say about why it failed, for the run-failure sensors' alerts.

Dagster wraps what user code raised: a step fails with `DagsterExecutionStepExecutionError:
Error occurred while executing op ...`, and the exception that matters (`PoolExhaustedError`, a
lost connection) is further down its chain. People paged at night need that innermost exception,
its message, the run and the partition, so `FailedRun` collects them from the run's own records
(the failure event, its step failures and the run's tags): reading them costs no registry query.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._utils.error import SerializableErrorInfo

from idminter_pipeline.core.alerts import Alert, FigureValue, Severity
from idminter_pipeline.core.settings import env_int
from idminter_pipeline.defs.alerts.resources import AlertsResource
from idminter_pipeline.defs.retries import retried_run_skip

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAGS = (PARTITION_TAG, RANGE_START_TAG, RANGE_END_TAG)
# What Dagster raises at the end of a step whose blocking ERROR check failed.
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"
# Pydantic's error when a run's config breaks a `dg.Config` constraint.
CONFIG_VALIDATION_ERROR = "ValidationError"
# A run of the implicit asset job names at most this many of its assets.
NAMED_ASSETS = 3
# How often the failure sensors look for failed runs: the longest a failed run waits to page.
ALERT_INTERVAL_ENV = "IDMINTER_FAILURE_ALERT_INTERVAL_SECONDS"
DEFAULT_ALERT_INTERVAL_SECONDS = 30
MAX_ALERT_INTERVAL_SECONDS = 3600


def failure_alert_interval(environ: Mapping[str, str] | None = None) -> int:
    """Seconds between the failure sensors' ticks (a bad value fails loading the code location,
    naming it)."""
    return env_int(
        environ,
        ALERT_INTERVAL_ENV,
        DEFAULT_ALERT_INTERVAL_SECONDS,
        minimum=1,
        maximum=MAX_ALERT_INTERVAL_SECONDS,
    )


def error_chain(error: SerializableErrorInfo | None) -> Iterator[SerializableErrorInfo]:
    """The error, then what it was raised from (`__cause__`, else `__context__`), innermost last."""
    while error is not None:
        yield error
        error = error.cause if error.cause is not None else error.context


def describe_error(error: SerializableErrorInfo) -> str:
    """`Type: message`, without the module path Dagster puts in front of the message."""
    message = error.message.strip()
    head, separator, rest = message.partition(": ")
    if separator and (head == error.cls_name or head.endswith("." + error.cls_name)):
        message = rest.strip()
    return f"{error.cls_name}: {message}" if message else error.cls_name


def step_errors(context: dg.RunFailureSensorContext) -> list[SerializableErrorInfo]:
    errors = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data is not None and data.error is not None:
            errors.append(data.error)
    return errors


def run_partition(run: dg.DagsterRun) -> str | None:
    """The run's partition, or its partition range as `first..last`."""
    if PARTITION_TAG in run.tags:
        return run.tags[PARTITION_TAG]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}..{end}"
    return None


def job_label(run: dg.DagsterRun) -> str:
    """The run's job as people know it. A materialization or backfill launched from an asset's
    page runs under Dagster's implicit asset job (`__ASSET_JOB`), a name nobody defined: such a
    run is named by the assets it materializes."""
    assets = sorted(key.to_user_string() for key in run.asset_selection or ())
    if not run.job_name.startswith(IMPLICIT_ASSET_JOB_NAME) or not assets:
        return run.job_name
    named = ", ".join(assets[:NAMED_ASSETS])
    more = len(assets) - NAMED_ASSETS
    return f"{named} and {more} more asset(s)" if more > 0 else named


@dataclass(frozen=True)
class FailedRun:
    """A failed run as an alert needs it: what failed, where, and the innermost cause."""

    run_id: str
    # The job, or for the implicit asset job the assets (`job_label`).
    job_name: str
    partition: str | None
    # One `Type: message` per failed step (or the run's own failure message), innermost first.
    causes: tuple[str, ...]
    # The class names along every step error's chain, outermost first.
    error_types: tuple[tuple[str, ...], ...]
    tags: dict[str, str]

    @classmethod
    def from_context(cls, context: dg.RunFailureSensorContext) -> FailedRun:
        run = context.dagster_run
        errors = step_errors(context)
        causes: list[str] = []
        types: list[tuple[str, ...]] = []
        for error in errors:
            chain = list(error_chain(error))
            types.append(tuple(link.cls_name for link in chain))
            cause = describe_error(chain[-1])
            if cause not in causes:
                causes.append(cause)
        if not causes:
            # The run failed outside any step (a crashed run worker, a failed launch).
            message = (context.failure_event.message or "").strip()
            causes.append(message or f"run {run.run_id} failed without an error message")
        return cls(
            run_id=run.run_id,
            job_name=job_label(run),
            partition=run_partition(run),
            causes=tuple(causes),
            error_types=tuple(types),
            tags=dict(run.tags),
        )

    @property
    def cause(self) -> str:
        return "; ".join(self.causes)

    def raised(self, cls_name: str) -> bool:
        """Whether any step's error chain holds an exception of this class."""
        return any(cls_name in chain for chain in self.error_types)

    @property
    def only_failed_checks(self) -> bool:
        """The steps ran to the end and failed only because a blocking check failed."""
        return bool(self.error_types) and all(
            chain[-1] == CHECK_FAILED_ERROR for chain in self.error_types
        )

    @property
    def refused_config(self) -> bool:
        """A step refused its run config (`dg.Config` validation), before doing anything.

        That is a mistake made in the launchpad by the person looking at it, not something to
        page anyone about. Only the step's own wrapper around pydantic's error counts: a
        validation error raised deeper inside domain code is a real failure.
        """
        return bool(self.error_types) and all(
            len(chain) == 2 and chain[-1] == CONFIG_VALIDATION_ERROR for chain in self.error_types
        )


def failed_check_evaluations(
    instance: dg.DagsterInstance, run_id: str, check_names: Sequence[str] | None = None
) -> list[dg.AssetCheckEvaluation]:
    """The run's failed blocking check evaluations (one run's event log, no registry query)."""
    evaluations = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        event = record.dagster_event
        data = event.event_specific_data if event is not None else None
        if not isinstance(data, dg.AssetCheckEvaluation) or data.passed:
            continue
        if check_names is not None and data.check_name not in check_names:
            continue
        evaluations.append(data)
    return evaluations


def handled_without_skipping(
    context: dg.RunFailureSensorContext, outcome: dg.SkipReason | dg.RunRequest | None
) -> dg.RunRequest | None:
    """What a run-failure sensor returns for one failed run: a run request, or None. A skip is
    logged instead of returned: Dagster evaluates a sensor for several failed runs per tick,
    stops the tick at a returned skip and refuses a tick that mixes it with runs already
    handled, so the tick would fail and the next one would page again for those runs."""
    if isinstance(outcome, dg.SkipReason):
        context.log.info(outcome.skip_message or "skipped")
        return None
    return outcome


def failed_run_alert(
    failed: FailedRun,
    *,
    title: str,
    what_happened: str,
    what_to_do: str,
    severity: Severity = Severity.CRITICAL,
    source: str,
    figures: dict[str, FigureValue] | None = None,
    runbook: str | None = None,
) -> Alert:
    return Alert(
        title=title,
        what_happened=what_happened,
        what_to_do=what_to_do,
        figures={"job": failed.job_name, **(figures or {})},
        severity=severity,
        source=source,
        cause=failed.cause,
        run_id=failed.run_id,
        partition=failed.partition,
        runbook=runbook,
    )


AlertBuilder = Callable[..., Alert | dg.SkipReason]


def domain_run(
    run: dg.DagsterRun, *, tag: str, asset: dg.AssetKey, others: AbstractSet[dg.AssetKey]
) -> bool:
    """Whether `run` is one domain's: its job's (tagged `tag`) or one that materializes `asset`
    from its page, unless it also materializes any of `others` (domains alerting on their own)."""
    selection = run.asset_selection or frozenset()
    if selection & others:
        return False
    return tag in run.tags or asset in selection


# Each alert sensor's decision for one failed run, by sensor name (`failure_decision`).
_DECISIONS: dict[str, Callable[..., dg.SkipReason | None]] = {}


def run_failure_alert_sensor(
    *, name: str, concerns: Callable[[dg.DagsterRun], bool], not_concerned: str
) -> Callable[[AlertBuilder], dg.SensorDefinition]:
    """A run-failure sensor that alerts people (the `alerts` resource) about the failed runs of
    one domain, made from the function it decorates: `build(context, failed, **resources)`
    returns the `Alert` (or a `SkipReason` when the run alerted itself); its docstring is the
    sensor's description.

    Every such sensor leaves alone the runs `concerns` does not claim (`run <id>
    <not_concerned>`), a run the run retry daemon will retry (only its last failure pages), and
    the runs whose config the launchpad refused (a person's mistake at the screen, not a page).
    Those reasons are logged, never returned (`handled_without_skipping`). The builder names any
    further resources it needs after `context` and `failed`.
    """

    def decorate(build: AlertBuilder) -> dg.SensorDefinition:
        def decide(
            context: dg.RunFailureSensorContext, alerts: AlertsResource, **resources: Any
        ) -> dg.SkipReason | None:
            run = context.dagster_run
            if not concerns(run):
                return dg.SkipReason(f"run {run.run_id} {not_concerned}")
            if (retried := retried_run_skip(run)) is not None:
                return retried
            failed = FailedRun.from_context(context)
            if failed.refused_config:
                return dg.SkipReason(
                    f"run {run.run_id} was refused by config validation: {failed.cause}"
                )
            alert = build(context, failed, **resources)
            if isinstance(alert, dg.SkipReason):
                return alert
            alerts.send(alert, log=context.log)
            return None

        def evaluate(
            context: dg.RunFailureSensorContext, alerts: AlertsResource, **resources: Any
        ) -> None:
            handled_without_skipping(context, decide(context, alerts, **resources))

        # Dagster gives a sensor the resources its function's signature names: `alerts`, and
        # those the builder names after (context, failed).
        own = list(inspect.signature(evaluate, eval_str=True).parameters.values())[:2]
        extra = list(inspect.signature(build, eval_str=True).parameters.values())[2:]
        evaluate.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
        evaluate.__name__ = build.__name__
        evaluate.__doc__ = build.__doc__
        _DECISIONS[name] = decide
        # One paragraph, as the UI shows it.
        description = " ".join((build.__doc__ or "").split())
        return dg.run_failure_sensor(
            name=name,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=description,
            minimum_interval_seconds=failure_alert_interval(),
        )(evaluate)

    return decorate


def failure_decision(sensor: dg.SensorDefinition) -> Callable[..., dg.SkipReason | None]:
    """What an alert sensor decides for one failed run (`decision(context, alerts,
    **resources)`): None when it alerted, else the reason it left the run alone."""
    return _DECISIONS[sensor.name]
