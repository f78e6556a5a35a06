"""The size limits of the registry's batched operations, in a module that imports nothing.

The CLI shows them in `--help`; kept here, `--help` does not import the operations themselves
(pymysql with the cryptography and ssl modules it loads, and tenacity: half of a command's
start-up). Each operation's module re-exports its own under the names it always had.
"""

from __future__ import annotations

# -- pool top-up (registry.pool.top_up) ----------------------------------------------------------
# Measured on the 2-core test machine (benchmarks/bench_pool.py): 50,000-row statements were
# fastest of 5,000 to 50,000. 100,000 rows of `('xxxxxxxx')` make a statement of about 1.3 MB,
# inside the default max_allowed_packet of both MariaDB (16 MB) and MySQL 8 (64 MB).
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
