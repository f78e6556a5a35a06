"""Alerts to the people who run the minter: what happened, the figures, and what to do.

An `Alert` is plain data; channels deliver it. Two channels exist:

- `LogFileChannel`: one JSON line per alert in a local file (`local_state_dir()/alerts.log` by
  default). Needs nothing but a disk, so it is the local default and the audit trail everywhere.
- `SnsChannel`: publishes to an AWS SNS topic (production: e-mail, Slack and paging subscribe to
  the topic). boto3 honours `AWS_ENDPOINT_URL`, which is how the tests reach moto's server.

`send_alert` tries every channel even when one fails, so a broken SNS topic never loses the
log-file line, then raises `AlertDeliveryError` naming the channels that failed.

Alerts carry only what callers put in them. Never put credentials or connection strings with
passwords in `figures`: build database figures with `DatabaseSettings.describe()`.

Every alert links to its runbook entry (`runbook_link()`, in the message and the log line): a
heading of `docs/operations/alerts.md`, the title itself, or `runbook` when the title has variable
parts (`Minting run failed: {job}`). `tests/test_docs_alerts.py` fails when an alert the code can
send has no entry there.

An alert about a failed run names its cause (`cause`: the innermost exception's type and message,
cut to `MAX_CAUSE_LENGTH`), the run (`run_id`) and the partition or partition range it covered
(`partition`), so the person paged can act without opening Dagster first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from idminter_pipeline.core.errors import AlertDeliveryError, InvalidInputError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.settings import local_state_dir

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "idminter-pipeline"
ALERTS_LOG_NAME = "alerts.log"
# SNS rejects subjects over 100 characters, or with line breaks or non-ASCII characters.
SNS_SUBJECT_MAX = 100
# An exception message can be huge (a whole document, a 10,000-row SQL error); an alert quotes
# this much of it and says how long it was.
MAX_CAUSE_LENGTH = 1_000
# The runbook: one heading per alert title (docs/operations/alerts.md).
RUNBOOK_PAGE = "docs/operations/alerts.md"

FigureValue = int | float | str | bool | None


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def runbook_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to `-`."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


@dataclass(frozen=True)
class Alert:
    """One message for people: `title` is the one-line summary (an e-mail subject)."""

    title: str
    what_happened: str
    what_to_do: str
    figures: Mapping[str, FigureValue] = field(default_factory=dict)
    severity: Severity = Severity.WARNING
    source: str = DEFAULT_SOURCE
    raised_at: datetime = field(default_factory=_utc_now)
    cause: str | None = None
    run_id: str | None = None
    partition: str | None = None
    # The heading of this alert's runbook entry when it is not the title itself (a title with
    # variable parts: "Minting run failed: {job}").
    runbook: str | None = None

    def __post_init__(self) -> None:
        for name in ("title", "what_happened", "what_to_do", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(f"alert {name} must be a non-empty string, got {value!r}")
        for name in ("cause", "run_id", "partition", "runbook"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidInputError(
                    f"alert {name} must be None or a non-empty string, got {excerpt(value)}"
                )
        if self.cause is not None:
            object.__setattr__(self, "cause", cut_message(self.cause))
        if not isinstance(self.severity, Severity):
            object.__setattr__(self, "severity", Severity(self.severity))
        bad = {k: v for k, v in self.figures.items() if not isinstance(v, FigureValue)}
        if bad:
            raise InvalidInputError(f"alert figures must be numbers, strings or None, got {bad!r}")
        object.__setattr__(self, "figures", dict(self.figures))

    def subject(self) -> str:
        """`[CRITICAL] title (source)`, flattened to what SNS accepts as a subject."""
        text = f"[{self.severity.value.upper()}] {self.title} ({self.source})"
        text = " ".join(text.split()).encode("ascii", "replace").decode("ascii")
        return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."

    def runbook_link(self) -> str:
        """Where the person paged reads what to check and do: `docs/operations/alerts.md#...`."""
        return f"{RUNBOOK_PAGE}#{runbook_anchor(self.runbook or self.title)}"

    def message(self) -> str:
        """The human-readable body: what happened, the figures, what to do."""
        lines = [
            f"{self.severity.value.upper()}: {self.title}",
            f"Source: {self.source}",
            f"Raised at: {self.raised_at.isoformat()}",
        ]
        lines += [
            f"{label}: {value}"
            for label, value in (
                ("Run", self.run_id),
                ("Partition", self.partition),
                ("Cause", self.cause),
            )
            if value is not None
        ]
        lines += [
            "",
            "What happened:",
            f"  {self.what_happened}",
        ]
        if self.figures:
            lines += ["", "Figures:"]
            lines += [f"  {name}: {_render(value)}" for name, value in self.figures.items()]
        lines += ["", "What to do:", f"  {self.what_to_do}"]
        lines += ["", f"Runbook: {self.runbook_link()}"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "raised_at": self.raised_at.isoformat(),
            "severity": self.severity.value,
            "source": self.source,
            "title": self.title,
            "cause": self.cause,
            "run_id": self.run_id,
            "partition": self.partition,
            "what_happened": self.what_happened,
            "figures": dict(self.figures),
            "what_to_do": self.what_to_do,
            "runbook": self.runbook_link(),
        }


def cut_message(text: str, limit: int = MAX_CAUSE_LENGTH) -> str:
    """The message itself when it is short; else an excerpt that says its full length."""
    return text if len(text) <= limit else excerpt(text, limit)


def _render(value: FigureValue) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class AlertChannel(Protocol):
    name: str

    def deliver(self, alert: Alert) -> None: ...


class LogFileChannel:
    """Appends one JSON line per alert. A lock keeps lines whole when processes share the file."""

    name = "log-file"

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else local_state_dir() / ALERTS_LOG_NAME

    def deliver(self, alert: Alert) -> None:
        line = json.dumps(alert.as_dict(), ensure_ascii=False, sort_keys=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> list[dict[str, Any]]:
        """Every alert in the file, oldest first (for tests and `tail`-like tools)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


class SnsChannel:
    """Publishes to an SNS topic, with severity and source as message attributes for filtering."""

    name = "sns"

    def __init__(self, topic_arn: str, *, region: str | None = None, client: Any = None) -> None:
        if not topic_arn.startswith("arn:"):
            raise InvalidInputError(f"SNS topic ARN must start with 'arn:', got {topic_arn!r}")
        self.topic_arn = topic_arn
        # The region is part of the ARN (arn:aws:sns:<region>:<account>:<name>).
        self.region = region or (topic_arn.split(":")[3] if topic_arn.count(":") >= 5 else None)
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            import boto3  # noqa: PLC0415  (only production pays for the import)

            self._client = boto3.client("sns", region_name=self.region)
        return self._client

    def deliver(self, alert: Alert) -> None:
        self.client().publish(
            TopicArn=self.topic_arn,
            Subject=alert.subject(),
            Message=alert.message(),
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": alert.severity.value},
                "source": {"DataType": "String", "StringValue": alert.source},
            },
        )


class LoggerChannel:
    """Writes the alert to a logger (Dagster's `context.log`, or Python logging)."""

    name = "log"

    def __init__(self, log: Any = None) -> None:
        self.log = log if log is not None else logger

    def deliver(self, alert: Alert) -> None:
        text = alert.message()
        if alert.severity is Severity.CRITICAL:
            # Dagster's log manager has no `critical` on every version; `error` always exists.
            getattr(self.log, "critical", self.log.error)(text)
        elif alert.severity is Severity.WARNING:
            self.log.warning(text)
        else:
            self.log.info(text)


@dataclass(frozen=True)
class AlertDelivery:
    alert: Alert
    delivered: tuple[str, ...]


def send_alert(alert: Alert, channels: Iterable[AlertChannel]) -> AlertDelivery:
    """Deliver to every channel; raise `AlertDeliveryError` after trying all if any failed."""
    delivered: list[str] = []
    failures: dict[str, str] = {}
    for channel in channels:
        try:
            channel.deliver(alert)
        except Exception as error:  # a failing channel must not stop the others
            logger.exception("alert channel %s failed for %r", channel.name, alert.title)
            failures[channel.name] = f"{type(error).__name__}: {error}"
        else:
            delivered.append(channel.name)
    if failures:
        raise AlertDeliveryError(alert.title, failures, delivered)
    return AlertDelivery(alert, tuple(delivered))
