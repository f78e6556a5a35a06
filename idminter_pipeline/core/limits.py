"""Batch sizes and size limits: one rule for every batched operation, and each operation's
bounds, in a module that imports nothing heavy, so every `--help` shows them without importing the
operations themselves (pymysql, tenacity, the pipeline).

A batch size below 1 is a mistake, never a request for a default: it is refused, naming the
value. A size above what an operation can take in one statement or transaction is lowered to its
maximum, and one below its useful minimum is raised to it (both documented with each command),
because those still mean "batches of about this size".
"""

from __future__ import annotations

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.excerpts import excerpt


def bounded_batch_size(
    batch_size: object, *, minimum: int = 1, maximum: int, what: str = "batch size"
) -> int:
    """`batch_size` within [minimum, maximum]; `InvalidInputError` unless it is an integer >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise InvalidInputError(f"{what} must be an integer, got {excerpt(batch_size)}")
    if batch_size < 1:
        raise InvalidInputError(
            f"{what} {batch_size} is not allowed: give at least 1 (sizes above {maximum:,} are "
            f"lowered to {maximum:,})"
        )
    return max(minimum, min(batch_size, maximum))


# -- the works pipeline (works.pipeline) ---------------------------------------------------------
DEFAULT_BATCH_SIZE = 500
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 5_000

# -- inheritance chains (registry.minting, works.succession) ------------------------------------
# The deepest record of an inheritance chain: the original record is at depth 0, its successor
# at 1. A work's succession rank holds the depth in 8 bits (works.succession), so the minter
# refuses a successor that would go deeper.
MAX_CHAIN_DEPTH = (1 << 8) - 1

# -- pool top-up (registry.pool.top_up) ----------------------------------------------------------
# Measured on the 2-core test machine (benchmarks/bench_pool.py): 50,000-row statements were
# fastest of 5,000 to 50,000. 100,000 rows of `('xxxxxxxx')` make a statement of about 1.3 MB,
# inside the default max_allowed_packet of both MariaDB (16 MB) and MySQL 8 (64 MB); on a server
# with a smaller packet each batch is cut to what fits it (registry.packets).
POOL_DEFAULT_BATCH_SIZE = 50_000
POOL_MAX_BATCH_SIZE = 100_000
POOL_DEFAULT_MAX_ROUNDS = 10
# Connections inserting at once. Two measured about 1.5 times as fast as one on the 2-core test
# machine; each writer takes its own key range of a chunk, so they rarely meet on a lock.
POOL_DEFAULT_WRITERS = 2
POOL_MAX_WRITERS = 4

# -- reconciliation (registry.reconciliation.repair) ---------------------------------------------
RECONCILIATION_DEFAULT_BATCH_SIZE = 10_000
RECONCILIATION_MIN_BATCH_SIZE = 100
RECONCILIATION_MAX_BATCH_SIZE = 100_000

# -- legacy migration (registry.legacy_migration.state) -------------------------------------------
LEGACY_DEFAULT_BATCH_SIZE = 20_000
LEGACY_MIN_BATCH_SIZE = 100
LEGACY_MAX_BATCH_SIZE = 200_000
