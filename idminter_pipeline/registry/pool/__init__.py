"""The free-ID pool (RFC 083, "ID pre-generation"), one module per concern:

- `top_up`: fills the pool with random IDs, serialized by a named lock; the pool's settings;
- `health`: exact counts, mint rates, the exhaustion forecast and the sensor's one statement;
- `watch`: what the sensor makes of that statement's reading (watermarks, state changes).

Callers import from this package; the modules are its rooms.
"""

from idminter_pipeline.registry.pool.health import (
    WATCH_POOL_SQL,
    PoolHealth,
    PoolWatch,
    count_free,
    count_free_up_to,
    pool_health,
    watch_pool,
)
from idminter_pipeline.registry.pool.top_up import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    DEFAULT_MAX_ROUNDS,
    DEFAULT_WRITERS,
    INSERT_MAX_ATTEMPTS,
    MAX_BATCH_SIZE,
    MAX_WRITERS,
    POOL_ENV,
    SORT_CHUNK,
    PoolSettings,
    TopUpReport,
    clamp_batch_size,
    replenish,
    top_up,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LOCK_TIMEOUT_SECONDS",
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_WRITERS",
    "INSERT_MAX_ATTEMPTS",
    "MAX_BATCH_SIZE",
    "MAX_WRITERS",
    "POOL_ENV",
    "SORT_CHUNK",
    "WATCH_POOL_SQL",
    "PoolHealth",
    "PoolSettings",
    "PoolWatch",
    "TopUpReport",
    "clamp_batch_size",
    "count_free",
    "count_free_up_to",
    "pool_health",
    "replenish",
    "top_up",
    "watch_pool",
]
