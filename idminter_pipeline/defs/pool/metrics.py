"""The pool's free count as a CloudWatch metric, written by the pool sensor on every tick.

With `IDMINTER_POOL_METRICS_NAMESPACE` set (deploy/aws/dagster-ecs.yaml sets it on the code
location), each tick prints one line in CloudWatch Embedded Metric Format (EMF) to stdout. ECS's
awslogs driver ships it to CloudWatch Logs, which turns it into metrics: no AWS call and no
boto3 in the sensor, so nothing here can slow or fail a tick. A tick that does not happen writes
no line, and the PoolBelowCriticalWatermark alarm treats the missing metric as breaching: a
dead daemon or code location pages someone too.

`FreeIds` is the sensor's count, which stops just past its cap (the cap is at least the low
watermark, see `watch_caps`): up to the cap it is exact, cap + 1 means "more than the cap".
`FreeIdsCountCap` is that cap, so a dashboard shows where the line stops meaning "exactly".
Either way the comparison with the critical watermark, which the alarm makes, is exact.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from idminter_pipeline.core.settings import env_text
from idminter_pipeline.registry.pool import PoolSettings, PoolWatch

METRICS_NAMESPACE_ENV = "IDMINTER_POOL_METRICS_NAMESPACE"
FREE_IDS_METRIC = "FreeIds"
FREE_IDS_CAP_METRIC = "FreeIdsCountCap"
# One dimension, so the metric is found the same way whatever else a deployment emits.
DIMENSIONS = {"Asset": "canonical_id_pool"}


def pool_metrics_document(
    watch: PoolWatch, settings: PoolSettings, *, namespace: str, timestamp_ms: int
) -> dict[str, Any]:
    """One EMF document: the metrics, their dimension, and the figures that explain them."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(DIMENSIONS)],
                    "Metrics": [
                        {"Name": FREE_IDS_METRIC, "Unit": "Count"},
                        {"Name": FREE_IDS_CAP_METRIC, "Unit": "Count"},
                    ],
                }
            ],
        },
        **DIMENSIONS,
        FREE_IDS_METRIC: watch.free,
        FREE_IDS_CAP_METRIC: watch.free_cap,
        # Not metrics: searchable beside them in CloudWatch Logs Insights.
        "free_is_exact": watch.free_is_exact,
        "low_watermark": settings.low_watermark,
        "critical_watermark": settings.critical_watermark,
        "minted_last_hour": watch.minted_last_hour,
        "minted_is_exact": watch.minted_is_exact,
    }


def emit_pool_metrics(
    watch: PoolWatch,
    settings: PoolSettings,
    *,
    namespace: str | None = None,
    stream: TextIO | None = None,
) -> bool:
    """Print the tick's EMF line when a namespace is configured; True if one was printed."""
    namespace = namespace if namespace is not None else env_text(METRICS_NAMESPACE_ENV)
    if not namespace:
        return False
    document = pool_metrics_document(
        watch, settings, namespace=namespace, timestamp_ms=int(time.time() * 1000)
    )
    out = stream if stream is not None else sys.stdout
    # One line, flushed: the log driver makes one log event of it, as EMF requires.
    out.write(json.dumps(document, separators=(",", ":")) + "\n")
    out.flush()
    return True
