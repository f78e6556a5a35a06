"""Migrating a live legacy 1:1 registry (RFC 083, "Data migration") to the many-to-one schema.

The legacy table is `identifiers` (latin1, primary key `CanonicalId`, unique source key). Migration
0001 leaves it in place and creates an empty `canonical_ids`; this package builds the new table as
`identifiers_new` with exactly 0001's DDL, fills both new tables, and swaps the names atomically.

How it stays correct while the legacy minter keeps writing:

1. Triggers on the legacy table log the `CanonicalId` of every inserted, updated (old and new) and
   deleted row into `legacy_migration_changes`, from before the first row is read.
2. The copy walks the legacy primary key in batches (keyset on `CanonicalId`); each batch commits
   together with its cursor in `legacy_migration_state`, so an interrupted run resumes after the
   last committed batch without copying anything twice.
3. Catch-up passes re-copy the logged IDs from the legacy table's current state and delete the log
   rows in the same transaction (never a high-water mark: a slow writer may commit a lower
   sequence number late).
4. From then on, triggers on `identifiers_new` refuse writes from any session but the
   migration's, so nothing changes the copy between its verification and the swap unseen.
5. A full, chunked, set-based comparison runs without a lock, in both directions: every legacy
   row is in the new tables and every row of the new table is a legacy row. A difference is
   tolerated only when that ID has a pending log entry.
6. What the legacy minter wrote during the verification is applied without a lock, each
   applied ID re-checked both ways, until the log is small (an ID changed again is logged
   again).
7. Under `LOCK TABLES ... WRITE` the rest of the log is applied and the IDs it touched are
   compared row by row in both directions. That is all the lock covers, so it lasts as long as
   the last few seconds' writes take to apply, whatever the size of the table. No row count is
   read: the verification counted the copy exactly and every change since is counted as it is
   applied. Then the lock is released and one `RENAME TABLE` swaps the names. A write that
   slips in between is still logged (the triggers move with the table) and applied right after
   the rename.

The legacy table is kept as `identifiers_legacy` until `finalize`; `rollback` restores it.

The package's modules follow those phases; each imports only the ones before it, and this
`__init__` only re-exports their public names:

- `state`: table and trigger names, phases, the state row, the registry's shape, the named lock,
  progress and report records, `migration_status`;
- `dry_run`: what a migration would copy and which legacy rows look wrong (reads only);
- `copy`: steps 1 to 4, the triggers, the keyset copy and `apply_changes` (the catch-up);
- `verify`: step 5 and the row-by-row re-checks of steps 6 and 7;
- `swap`: step 7's final pass and the rename, then `finalize` and `rollback`;
- `run`: `migrate`, which runs the steps in order and resumes an interrupted run.
"""

from __future__ import annotations

from idminter_pipeline.registry.legacy_migration.copy import (
    ER_DUP_ENTRY,
    MAX_APPLY_ATTEMPTS,
    AppliedChanges,
    apply_changes,
)
from idminter_pipeline.registry.legacy_migration.dry_run import (
    BAD_SOURCE_PART_PATTERN,
    CANONICAL_ID_PATTERN,
    DryRunReport,
    Finding,
    dry_run,
)
from idminter_pipeline.registry.legacy_migration.run import (
    FINAL_PASS_THRESHOLD,
    LOCKED_CATCH_UP_THRESHOLD,
    MAX_CATCH_UP_ROUNDS,
    migrate,
)
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    EXAMPLES,
    GUARD_TRIGGER_NAMES,
    KEPT_TABLE,
    LEGACY_COLUMNS,
    LIVE_TABLE,
    LOCK_WAIT_TIMEOUT_SECONDS,
    LOG_TRIGGER_NAMES,
    MAX_BATCH_SIZE,
    MIGRATION_LOCK,
    MIGRATION_SESSION_VARIABLE,
    MIN_BATCH_SIZE,
    NEW_TABLE,
    STATE_TABLE,
    TRIGGER_NAMES,
    MigrationReport,
    Phase,
    Progress,
    ProgressCallback,
    RegistryShape,
    clamp_batch_size,
    is_legacy_shape,
    migration_phase,
    migration_status,
    new_identifiers_ddl,
    pending_changes,
    registry_shape,
    show_create_table,
)
from idminter_pipeline.registry.legacy_migration.swap import LegacyActionReport, finalize, rollback
from idminter_pipeline.registry.legacy_migration.verify import (
    MAX_EXCLUDED_PER_CHUNK,
    MAX_REPORTED,
    Verification,
    verify_copy,
)

__all__ = [
    "BAD_SOURCE_PART_PATTERN",
    "CANONICAL_ID_PATTERN",
    "CHANGES_TABLE",
    "DEFAULT_BATCH_SIZE",
    "ER_DUP_ENTRY",
    "EXAMPLES",
    "FINAL_PASS_THRESHOLD",
    "GUARD_TRIGGER_NAMES",
    "KEPT_TABLE",
    "LEGACY_COLUMNS",
    "LIVE_TABLE",
    "LOCKED_CATCH_UP_THRESHOLD",
    "LOCK_WAIT_TIMEOUT_SECONDS",
    "LOG_TRIGGER_NAMES",
    "MAX_APPLY_ATTEMPTS",
    "MAX_BATCH_SIZE",
    "MAX_CATCH_UP_ROUNDS",
    "MAX_EXCLUDED_PER_CHUNK",
    "MAX_REPORTED",
    "MIGRATION_LOCK",
    "MIGRATION_SESSION_VARIABLE",
    "MIN_BATCH_SIZE",
    "NEW_TABLE",
    "STATE_TABLE",
    "TRIGGER_NAMES",
    "AppliedChanges",
    "DryRunReport",
    "Finding",
    "LegacyActionReport",
    "MigrationReport",
    "Phase",
    "Progress",
    "ProgressCallback",
    "RegistryShape",
    "Verification",
    "apply_changes",
    "clamp_batch_size",
    "dry_run",
    "finalize",
    "is_legacy_shape",
    "migrate",
    "migration_phase",
    "migration_status",
    "new_identifiers_ddl",
    "pending_changes",
    "registry_shape",
    "rollback",
    "show_create_table",
    "verify_copy",
]
