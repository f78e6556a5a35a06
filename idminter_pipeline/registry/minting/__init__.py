"""Batch lookup and batch minting of canonical IDs (RFC 083, "ID Minter logic").

- `minter`: the `Minter`, which runs each call's statements in one transaction, with retries;
- `plan`: what a call asks for and decides, without SQL (folding, cycles, the batch plan);
- `statements`: the text of the statements the minter runs;
- `aliases`: the order of a canonical ID's source identifiers;
- `chains`: which source inherited a canonical ID from which (read for `works.succession`);
- `read_only`: the `ReadOnlyMinter` of shadow mode, which plans as the minter does and writes
  nothing (imported from its module: it reads the legacy migration's state).

Callers import from this package; the modules are its rooms.
"""

from idminter_pipeline.core.job_ids import MAX_JOB_ID_LENGTH
from idminter_pipeline.core.predecessor_cycles import reject_cycles
from idminter_pipeline.registry.minting.aliases import Alias, AliasStatus
from idminter_pipeline.registry.minting.chains import Inheritance
from idminter_pipeline.registry.minting.minter import (
    DEFAULT_LOCK_WAIT_TIMEOUT_SECONDS,
    DEFAULT_LOOKUP_CHUNK_SIZE,
    DEFAULT_MAX_ATTEMPTS,
    ER_LOCK_DEADLOCK,
    ER_LOCK_WAIT_TIMEOUT,
    ISOLATION_LEVELS,
    MAX_LOOKUP_CHUNK_SIZE,
    MAX_MAX_ATTEMPTS,
    MIN_LOOKUP_CHUNK_SIZE,
    Minter,
    MinterStats,
)
from idminter_pipeline.registry.minting.plan import (
    Key,
    MintOutcome,
    MintRequest,
    MintResult,
    collation_key,
    fold_requests,
    pad_space,
)

__all__ = [
    "DEFAULT_LOCK_WAIT_TIMEOUT_SECONDS",
    "DEFAULT_LOOKUP_CHUNK_SIZE",
    "DEFAULT_MAX_ATTEMPTS",
    "ER_LOCK_DEADLOCK",
    "ER_LOCK_WAIT_TIMEOUT",
    "ISOLATION_LEVELS",
    "MAX_JOB_ID_LENGTH",
    "MAX_LOOKUP_CHUNK_SIZE",
    "MAX_MAX_ATTEMPTS",
    "MIN_LOOKUP_CHUNK_SIZE",
    "Alias",
    "AliasStatus",
    "Inheritance",
    "Key",
    "MintOutcome",
    "MintRequest",
    "MintResult",
    "Minter",
    "MinterStats",
    "collation_key",
    "fold_requests",
    "pad_space",
    "reject_cycles",
]
