"""The routine check that keeps the registry honest, and the repairs that are safe to automate.

Findings (one row each in the report):

- `free_ids_in_use` (critical): a mapping uses an ID the pool still offers, so it would be handed
  out twice. Repair: mark it assigned (always safe: it only shrinks the pool).
- `orphan_assigned_ids` (warning): assigned IDs no mapping uses. An orphan that once identified
  a record (`retired_ids.once_mapped`: provenance, the minter's assignment stamp, the legacy
  table, its change log, a legacy copy) is retired: recorded in `retired_canonical_ids`, also
  without repair, and never returned to the pool, since its public URL was published. The others
  are tracked in `reconciliation_orphans` with when they were first seen; repair returns one to
  the pool only once it has been an orphan for the grace period, still is under a lock that keeps
  any mapping from taking it meanwhile, still shows no trace of a mapping, and matches today's ID
  format (a legacy-format ID is never handed out).
- `ids_shared_without_inheritance` (critical): one canonical ID held by several records that no
  inheritance links: more than one of its mappings has no `inherited` provenance event for it
  (an ID a corrupted pool handed out twice, a hand edit). Each example names the ID and its
  records. Reported, not repaired: which record keeps the ID is a person's decision (the others
  are retired through `idminter reconcile retire-mapping`).
- `mappings_missing_canonical_id` (error): a mapping whose ID is not in `canonical_ids` (possible
  only with foreign key checks off, or legacy data). Reported, not repaired: a person decides.
- `predecessor_mismatches` (warning): mismatches the minter recorded in `identifier_provenance`
  (migration 0002); "unavailable" when that table does not exist.
- `case_or_padding_variants` (warning): source identifiers equal except for case or surrounding
  spaces (the legacy registry matched those as one). Reported, not repaired.

Every scan is set-based SQL over keyset batches of a primary or secondary key, so memory stays
bounded and no table is read into Python; only counts, examples and repaired IDs come back. The
variant scan, whose groups no existing index brings together, also counts hashes of the folded
keys batch by batch into session temporary tables (`variants`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from idminter_pipeline.core.errors import InvalidInputError
from idminter_pipeline.core.limits import (
    RECONCILIATION_DEFAULT_BATCH_SIZE,
    RECONCILIATION_MAX_BATCH_SIZE,
    RECONCILIATION_MIN_BATCH_SIZE,
    bounded_batch_size,
)
from idminter_pipeline.core.reports import field_values
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.legacy_migration import RegistryShape, registry_shape
from idminter_pipeline.registry.packets import packet_runs
from idminter_pipeline.registry.reconciliation.keyset import (
    execute,
    keyset_ranges,
    range_condition,
    range_params,
)
from idminter_pipeline.registry.reconciliation.retired_ids import RETIRED_TABLE, once_mapped, retire
from idminter_pipeline.registry.reconciliation.returns import (
    ORPHANS_TABLE,
    RETURNED,
    placeholders,
    return_orphans_to_pool,
)
from idminter_pipeline.registry.reconciliation.variants import find_case_or_padding_variants
from idminter_pipeline.registry.schema import DriftKind, require_project_schema, table_exists

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

FREE_IDS_IN_USE = "free_ids_in_use"
ORPHAN_ASSIGNED_IDS = "orphan_assigned_ids"
MAPPINGS_MISSING_ID = "mappings_missing_canonical_id"
SHARED_WITHOUT_INHERITANCE = "ids_shared_without_inheritance"
PREDECESSOR_MISMATCHES = "predecessor_mismatches"
CASE_OR_PADDING_VARIANTS = "case_or_padding_variants"
FINDINGS = (
    FREE_IDS_IN_USE,
    ORPHAN_ASSIGNED_IDS,
    SHARED_WITHOUT_INHERITANCE,
    MAPPINGS_MISSING_ID,
    PREDECESSOR_MISMATCHES,
    CASE_OR_PADDING_VARIANTS,
)
SEVERITY = {
    FREE_IDS_IN_USE: "critical",
    ORPHAN_ASSIGNED_IDS: "warning",
    SHARED_WITHOUT_INHERITANCE: "critical",
    MAPPINGS_MISSING_ID: "error",
    PREDECESSOR_MISMATCHES: "warning",
    CASE_OR_PADDING_VARIANTS: "warning",
}
REPAIRABLE = {FREE_IDS_IN_USE, ORPHAN_ASSIGNED_IDS}
PROVENANCE_TABLE = "identifier_provenance"

DEFAULT_BATCH_SIZE = RECONCILIATION_DEFAULT_BATCH_SIZE
MIN_BATCH_SIZE = RECONCILIATION_MIN_BATCH_SIZE
MAX_BATCH_SIZE = RECONCILIATION_MAX_BATCH_SIZE
DEFAULT_GRACE_PERIOD = timedelta(days=7)
EXAMPLES = 10
# A row of the orphans table binds two timestamps ('YYYY-MM-DD hh:mm:ss.ffffff', quoted, each
# with its separator) and its parentheses besides its ID.
_SEEN_AT_ROW_BYTES = 2 * (26 + 4) + 4
# The report lists every change; beyond this many it keeps counting and logs the rest.
MAX_LISTED_CHANGES = 100_000

REPORT_COLUMNS = ["finding", "severity", "status", "count", "repairable", "repaired", "examples"]


def clamp_batch_size(batch_size: int) -> int:
    """Within [MIN_BATCH_SIZE, MAX_BATCH_SIZE]; below 1 refused, naming it."""
    return bounded_batch_size(batch_size, minimum=MIN_BATCH_SIZE, maximum=MAX_BATCH_SIZE)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `12h`, `7d`, `2w` (a whole number and one unit)."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInputError(
            f"invalid grace period {text!r}: expected a whole number and a unit, "
            "s, m, h, d or w (e.g. 7d)"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass
class FindingResult:
    finding: str
    severity: str
    status: str  # "ok", "found" or "unavailable"
    count: int = 0
    repairable: bool = False
    repaired: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""

    def mark_unavailable(self, note: str) -> None:
        self.status, self.note = "unavailable", note

    def add(self, values: Sequence[str]) -> None:
        self.count += len(values)
        room = EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(values[:room])


@dataclass(frozen=True)
class Change:
    action: str  # "marked assigned" or "returned to pool"
    canonical_id: str
    finding: str
    detail: str


@dataclass(kw_only=True)
class ReconciliationReport:
    # Fields in the order the report lists them.
    started_at: datetime
    duration_seconds: float = 0.0
    # Seconds per scan (canonical_ids, repair_orphans, mappings, provenance, variants).
    scan_seconds: dict[str, float] = field(default_factory=dict)
    repair: bool
    grace_period_seconds: float
    findings: list[FindingResult]
    changes: list[Change]
    changes_total: int
    # Orphans found to have identified a record, recorded in retired_canonical_ids by this run
    # (listed up to MAX_LISTED_CHANGES), and every retired orphan this run saw.
    newly_retired: list[tuple[str, str]] = field(default_factory=list)
    retired_total: int = 0
    retired_orphans: int = 0

    def result(self, name: str) -> FindingResult:
        return next(f for f in self.findings if f.finding == name)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415  (0.5-0.9 s: only the printed tables need it)

        rows = [
            {**asdict(f), "examples": ", ".join(f.examples), "note": f.note} for f in self.findings
        ]
        return pd.DataFrame(rows, columns=[*REPORT_COLUMNS, "note"])

    def changes_frame(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame(
            [asdict(c) for c in self.changes],
            columns=["action", "canonical_id", "finding", "detail"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **field_values(self),
            "newly_retired": [
                {"canonical_id": canonical_id, "reason": reason}
                for canonical_id, reason in self.newly_retired
            ],
        }


class _Run:
    def __init__(
        self, conn: Connection, *, repair: bool, grace: timedelta, batch_size: int
    ) -> None:
        self.conn = conn
        self.repair = repair
        self.grace = grace
        self.batch_size = batch_size
        self.results = {
            name: FindingResult(name, SEVERITY[name], "ok", repairable=name in REPAIRABLE)
            for name in FINDINGS
        }
        self.changes: list[Change] = []
        self.changes_total = 0
        self.newly_retired: list[tuple[str, str]] = []
        self.retired_total = 0
        self.retired_orphans = 0
        self.run_started = execute(conn, "SELECT CURRENT_TIMESTAMP(6)")[0][0]

    def record(self, action: str, canonical_id: str, finding: str, detail: str) -> None:
        self.changes_total += 1
        self.results[finding].repaired += 1
        logger.info("reconcile repair: %s %s (%s)", action, canonical_id, detail)
        if len(self.changes) < MAX_LISTED_CHANGES:
            self.changes.append(Change(action, canonical_id, finding, detail))

    # -- canonical_ids: free IDs in use, and orphans -----------------------------------------

    def scan_canonical_ids(self) -> None:
        conn = self.conn
        for lower, upper in keyset_ranges(conn, "canonical_ids", "CanonicalId", self.batch_size):
            rows = execute(
                conn,
                "SELECT c.CanonicalId, c.Status FROM canonical_ids c "
                f"WHERE {range_condition('c.CanonicalId', lower)} AND ("
                "(c.Status = 'free' AND EXISTS "
                "(SELECT 1 FROM identifiers i WHERE i.CanonicalId = c.CanonicalId)) OR "
                "(c.Status = 'assigned' AND NOT EXISTS "
                "(SELECT 1 FROM identifiers i WHERE i.CanonicalId = c.CanonicalId)))",
                range_params(lower, upper),
            )
            in_use = [canonical for canonical, status in rows if status == "free"]
            orphans = [canonical for canonical, status in rows if status == "assigned"]
            self.results[FREE_IDS_IN_USE].add(in_use)
            self.results[ORPHAN_ASSIGNED_IDS].add(orphans)
            # Bookkeeping, also without --repair: orphans that once identified a record are
            # retired (the evidence may not last); the others' grace period runs from first sight.
            evidence = once_mapped(conn, orphans)
            self.retired_orphans += len(evidence)
            self.note_retired(retire(conn, evidence), evidence)
            untraced = [o for o in orphans if o not in evidence]
            for run in packet_runs(conn, untraced, per_row=_SEEN_AT_ROW_BYTES):
                execute(
                    conn,
                    f"INSERT INTO {ORPHANS_TABLE} (CanonicalId, FirstSeenAt, LastSeenAt) VALUES "
                    + ", ".join(["(%s, %s, %s)"] * len(run))
                    + " ON DUPLICATE KEY UPDATE LastSeenAt = VALUES(LastSeenAt)",
                    [v for o in run for v in (o, self.run_started, self.run_started)],
                )
            conn.commit()
            if in_use and self.repair:
                for run in packet_runs(conn, in_use):
                    self.mark_assigned(run)
        # Tracked IDs not seen in this run are no longer orphans: forget them.
        while True:
            with conn.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {ORPHANS_TABLE} WHERE LastSeenAt < %s LIMIT {self.batch_size}",
                    (self.run_started,),
                )
                deleted = cursor.rowcount
            conn.commit()
            if not deleted:
                break

    def note_retired(self, canonical_ids: Sequence[str], reasons: dict[str, str]) -> None:
        self.retired_total += len(canonical_ids)
        for canonical_id in canonical_ids:
            logger.info("reconcile: retired %s (%s)", canonical_id, reasons[canonical_id])
            if len(self.newly_retired) < MAX_LISTED_CHANGES:
                self.newly_retired.append((canonical_id, reasons[canonical_id]))

    def mark_assigned(self, candidates: Sequence[str]) -> None:
        conn = self.conn
        locked = execute(
            conn,
            "SELECT c.CanonicalId FROM canonical_ids c "
            f"WHERE c.CanonicalId IN ({placeholders(candidates)}) AND c.Status = 'free' AND "
            "EXISTS (SELECT 1 FROM identifiers i WHERE i.CanonicalId = c.CanonicalId) FOR UPDATE",
            list(candidates),
        )
        ids = [value for (value,) in locked]
        if ids:
            execute(
                conn,
                "UPDATE canonical_ids SET Status = 'assigned' "
                f"WHERE CanonicalId IN ({placeholders(ids)})",
                ids,
            )
        conn.commit()
        for canonical in ids:
            self.record("marked assigned", canonical, FREE_IDS_IN_USE, "free ID used by a mapping")

    def repair_orphans(self) -> None:
        conn = self.conn
        cutoff = self.run_started - self.grace
        lower = ""
        while True:
            rows = execute(
                conn,
                f"SELECT CanonicalId FROM {ORPHANS_TABLE} WHERE CanonicalId > %s "
                "AND FirstSeenAt <= %s AND LastSeenAt >= %s ORDER BY CanonicalId "
                f"LIMIT {self.batch_size}",
                (lower, cutoff, self.run_started),
            )
            conn.commit()
            if not rows:
                return
            candidates = [value for (value,) in rows]
            lower = candidates[-1]
            retired: dict[str, str] = {}
            outcome: dict[str, str] = {}
            for run in packet_runs(conn, candidates):
                outcome.update(return_orphans_to_pool(conn, run, retired=retired))
            self.note_retired(sorted(retired), retired)
            for canonical, detail in outcome.items():
                if detail == RETURNED:
                    self.record(
                        "returned to pool",
                        canonical,
                        ORPHAN_ASSIGNED_IDS,
                        f"unused for over {self.grace} and still unused under lock",
                    )

    # -- identifiers: mappings whose ID is missing --------------------------------------------

    def scan_mappings(self) -> None:
        conn = self.conn
        result = self.results[MAPPINGS_MISSING_ID]
        for lower, upper in keyset_ranges(conn, "identifiers", "CanonicalId", self.batch_size):
            rows = execute(
                conn,
                "SELECT i.OntologyType, i.SourceSystem, i.SourceId, i.CanonicalId "
                f"FROM identifiers i WHERE {range_condition('i.CanonicalId', lower)} AND "
                "NOT EXISTS (SELECT 1 FROM canonical_ids c WHERE c.CanonicalId = i.CanonicalId)",
                range_params(lower, upper),
            )
            conn.commit()
            result.add([f"{o}[{s}/{v}] -> {c}" for o, s, v, c in rows])

    def provenance_finding(self, name: str) -> FindingResult | None:
        """The result of `name`, a finding read from the provenance table; None where there is
        no such table (the result is then marked unavailable)."""
        result = self.results[name]
        if table_exists(self.conn, PROVENANCE_TABLE):
            return result
        result.mark_unavailable(f"no {PROVENANCE_TABLE} table (minting migration 0002 not applied)")
        return None

    # -- identifiers: one ID held by records no inheritance links -----------------------------

    def scan_shared_ids(self) -> None:
        """IDs with more than one mapping that did not inherit it (an `inherited` provenance
        event names the mapping as successor of that ID): the original is one, any other is a
        record that got the ID without inheriting it."""
        result = self.provenance_finding(SHARED_WITHOUT_INHERITANCE)
        if result is None:
            return
        conn = self.conn
        for lower, upper in keyset_ranges(conn, "identifiers", "CanonicalId", self.batch_size):
            # An index-only pass finds the shared IDs (aliases are few); only they are probed.
            shared = [
                canonical_id
                for (canonical_id,) in execute(
                    conn,
                    "SELECT i.CanonicalId FROM identifiers i "
                    f"WHERE {range_condition('i.CanonicalId', lower)} "
                    "GROUP BY i.CanonicalId HAVING COUNT(*) > 1",
                    range_params(lower, upper),
                )
            ]
            if shared:
                uninherited = execute(
                    conn,
                    "SELECT i.CanonicalId FROM identifiers i "
                    f"WHERE i.CanonicalId IN ({placeholders(shared)}) AND NOT EXISTS ("
                    f"SELECT 1 FROM {PROVENANCE_TABLE} p WHERE p.CanonicalId = i.CanonicalId "
                    "AND p.Kind = 'inherited' AND p.SuccessorOntologyType = i.OntologyType "
                    "AND p.SuccessorSourceSystem = i.SourceSystem "
                    "AND p.SuccessorSourceId = i.SourceId) "
                    "GROUP BY i.CanonicalId HAVING COUNT(*) > 1 ORDER BY i.CanonicalId",
                    shared,
                )
                ids = [canonical_id for (canonical_id,) in uninherited]
                room = max(0, EXAMPLES - len(result.examples))
                # Examples name the records; the rest are only counted.
                result.add([self.name_records(c) for c in ids[:room]] + ids[room:])
            conn.commit()

    def name_records(self, canonical_id: str) -> str:
        rows = execute(
            self.conn,
            "SELECT OntologyType, SourceSystem, SourceId FROM identifiers WHERE CanonicalId = %s "
            f"ORDER BY CreatedAt, OntologyType, SourceSystem, SourceId LIMIT {EXAMPLES}",
            (canonical_id,),
        )
        return f"{canonical_id}: " + ", ".join(f"{o}[{s}/{v}]" for o, s, v in rows)

    # -- provenance: recorded predecessor mismatches ------------------------------------------

    def scan_provenance(self) -> None:
        result = self.provenance_finding(PREDECESSOR_MISMATCHES)
        if result is None:
            return
        conn = self.conn
        (count,) = execute(
            conn,
            f"SELECT COUNT(*) FROM {PROVENANCE_TABLE} WHERE Kind = 'predecessor_mismatch'",
        )[0]
        rows = execute(
            conn,
            "SELECT SuccessorOntologyType, SuccessorSourceSystem, SuccessorSourceId, CanonicalId, "
            "PredecessorOntologyType, PredecessorSourceSystem, PredecessorSourceId, "
            f"PredecessorCanonicalId FROM {PROVENANCE_TABLE} "
            f"WHERE Kind = 'predecessor_mismatch' ORDER BY Seq DESC LIMIT {EXAMPLES}",
        )
        conn.commit()
        result.count = int(count)
        result.examples = [
            f"{so}[{ss}/{sv}] ({sc}) declares {po}[{ps}/{pv}] ({pc or 'no ID'})"
            for so, ss, sv, sc, po, ps, pv, pc in rows
        ]

    # -- identifiers: sources differing only by case or padding -------------------------------

    def scan_variants(self) -> None:
        """Groups of mappings equal but for case or padding (`variants`)."""
        find_case_or_padding_variants(
            self.conn,
            batch_size=self.batch_size,
            found=self.results[CASE_OR_PADDING_VARIANTS].add,
        )


def reconcile(
    connect: ConnectionFactory,
    *,
    repair: bool = False,
    grace_period: timedelta = DEFAULT_GRACE_PERIOD,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ReconciliationReport:
    """Find (and with `repair`, fix what is safe to fix) registry inconsistencies."""
    if grace_period < timedelta(0):
        raise InvalidInputError(f"invalid grace period {grace_period}: must not be negative")
    batch_size = clamp_batch_size(batch_size)  # refused before any connection, naming it
    started = time.monotonic()
    started_at = datetime.now(UTC)
    scan_seconds: dict[str, float] = {}
    conn = connect()
    try:
        # READ COMMITTED: each batch sees fresh committed data and the scans lock nothing.
        execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # Legacy and unmigrated registries are reported below, finding by finding.
        require_project_schema(
            conn, allow=(DriftKind.NOT_APPLIED, DriftKind.PENDING, DriftKind.LEGACY)
        )
        run = _Run(conn, repair=repair, grace=grace_period, batch_size=batch_size)
        shape = registry_shape(conn)
        conn.commit()
        if shape is not RegistryShape.MIGRATED or not all(
            table_exists(conn, table) for table in (ORPHANS_TABLE, RETIRED_TABLE)
        ):
            note = (
                "the registry still holds the legacy 1:1 table: run `idminter db migrate-legacy`"
                if shape is RegistryShape.LEGACY
                else "the registry schema is not applied: run `idminter db migrate`"
            )
            for result in run.results.values():
                result.mark_unavailable(note)
        else:
            scans = [run.scan_canonical_ids]
            if repair:
                scans.append(run.repair_orphans)
            scans += [
                run.scan_shared_ids,
                run.scan_mappings,
                run.scan_provenance,
                run.scan_variants,
            ]
            for scan in scans:
                scan_started = time.monotonic()
                scan()
                name = scan.__name__.removeprefix("scan_")
                scan_seconds[name] = round(time.monotonic() - scan_started, 3)
            for result in run.results.values():
                if result.status != "unavailable":
                    result.status = "found" if result.count else "ok"
        orphans = run.results[ORPHAN_ASSIGNED_IDS]
        if orphans.status != "unavailable":
            notes = [
                f"{run.retired_orphans} retired: once identified a record, never returned to "
                f"the pool ({run.retired_total} newly recorded in {RETIRED_TABLE})"
            ]
            if repair:
                notes.append(
                    f"grace period {grace_period}; the others returned only if unused under lock "
                    "and never mapped"
                )
            orphans.note = "; ".join(notes)
    finally:
        conn.close()
    return ReconciliationReport(
        findings=[run.results[name] for name in FINDINGS],
        changes=run.changes,
        changes_total=run.changes_total,
        repair=repair,
        grace_period_seconds=grace_period.total_seconds(),
        started_at=started_at,
        duration_seconds=round(time.monotonic() - started, 3),
        scan_seconds=scan_seconds,
        newly_retired=run.newly_retired,
        retired_total=run.retired_total,
        retired_orphans=run.retired_orphans,
    )
