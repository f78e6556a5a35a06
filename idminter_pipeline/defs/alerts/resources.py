"""The `alerts` resource: Dagster's event log and a log file locally, plus SNS in production.

`IDMINTER_ALERTS_SNS_TOPIC_ARN` (and optionally `IDMINTER_ALERTS_SNS_REGION`, else the ARN's
region) turns the SNS channel on; the values reach the resource through `EnvVar`, so the UI and
run config show the variable names only. `IDMINTER_ALERTS_LOG` moves the log file.
"""

from typing import Any

import dagster as dg

from idminter_pipeline.core.alerts import (
    DEFAULT_SOURCE,
    Alert,
    AlertChannel,
    AlertDelivery,
    LogFileChannel,
    LoggerChannel,
    SnsChannel,
    send_alert,
)
from idminter_pipeline.defs.resources import env_var

SNS_TOPIC_ENV = "IDMINTER_ALERTS_SNS_TOPIC_ARN"
SNS_REGION_ENV = "IDMINTER_ALERTS_SNS_REGION"
LOG_FILE_ENV = "IDMINTER_ALERTS_LOG"


class AlertsResource(dg.ConfigurableResource):
    """Sends `Alert`s to the event log (or Python logging), a log file, and SNS when configured."""

    log_file: str | None = None
    sns_topic_arn: str | None = None
    sns_region: str | None = None
    source: str = DEFAULT_SOURCE

    def channels(self, log: Any = None) -> list[AlertChannel]:
        channels: list[AlertChannel] = [LoggerChannel(log), LogFileChannel(self.log_file)]
        if self.sns_topic_arn:
            channels.append(SnsChannel(self.sns_topic_arn, region=self.sns_region or None))
        return channels

    def send(self, alert: Alert, *, log: Any = None) -> AlertDelivery:
        """Deliver to every channel; `log` is a Dagster `context.log` when there is one.

        Raises `AlertDeliveryError` (after trying every channel) if any channel failed.
        """
        return send_alert(alert, self.channels(log))

    def log_file_channel(self) -> LogFileChannel:
        return LogFileChannel(self.log_file)


def alerts_from_env() -> AlertsResource:
    return AlertsResource(
        log_file=env_var(LOG_FILE_ENV),
        sns_topic_arn=env_var(SNS_TOPIC_ENV),
        sns_region=env_var(SNS_REGION_ENV),
    )
