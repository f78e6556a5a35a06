"""The routine check that keeps the registry honest, and the repairs safe to automate.

- `repair`: the findings, the report and `reconcile` (with its safe repairs);
- `variants`: the scan for source identifiers equal but for case or padding;
- `retired_ids`: published IDs that lost their mapping, kept out of the pool for good;
- `keyset`: the keyset batching every scan walks.

Callers import from this package; the modules are its rooms.
"""

from idminter_pipeline.registry.reconciliation.repair import (
    CASE_OR_PADDING_VARIANTS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_GRACE_PERIOD,
    EXAMPLES,
    FINDINGS,
    FREE_IDS_IN_USE,
    MAPPINGS_MISSING_ID,
    MAX_BATCH_SIZE,
    MIN_BATCH_SIZE,
    ORPHAN_ASSIGNED_IDS,
    PREDECESSOR_MISMATCHES,
    REPAIRABLE,
    REPORT_COLUMNS,
    RETURNED,
    SEVERITY,
    SHARED_WITHOUT_INHERITANCE,
    Change,
    FindingResult,
    ReconciliationReport,
    clamp_batch_size,
    parse_duration,
    reconcile,
    return_orphans_to_pool,
)
from idminter_pipeline.registry.reconciliation.retired_ids import RetiredMapping, retire_mapping

__all__ = [
    "CASE_OR_PADDING_VARIANTS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_GRACE_PERIOD",
    "EXAMPLES",
    "FINDINGS",
    "FREE_IDS_IN_USE",
    "MAPPINGS_MISSING_ID",
    "MAX_BATCH_SIZE",
    "MIN_BATCH_SIZE",
    "ORPHAN_ASSIGNED_IDS",
    "PREDECESSOR_MISMATCHES",
    "REPAIRABLE",
    "REPORT_COLUMNS",
    "RETURNED",
    "SEVERITY",
    "SHARED_WITHOUT_INHERITANCE",
    "Change",
    "FindingResult",
    "ReconciliationReport",
    "RetiredMapping",
    "clamp_batch_size",
    "parse_duration",
    "reconcile",
    "retire_mapping",
    "return_orphans_to_pool",
]
