"""Legacy migration speed: N legacy rows copied, verified and swapped vs one INSERT ... SELECT.

For each size, a legacy 1:1 table (RFC 083 "Current schema", latin1) is generated server-side
(INSERT ... SELECT over a digits cross join: unique, randomly ordered canonical IDs in today's
format, Sierra-like source identifiers), the project's migrations are applied, and
`legacy_migration.migrate` runs end to end: keyset copy, catch-up, full set-based verification in
both directions, locked final pass (change log only), RENAME. The baseline is the RFC's plain
copy of the same rows (one `INSERT ... SELECT` into `canonical_ids` and one into `identifiers`,
same session settings, no verification) into a second freshly migrated database.

Throughout, a legacy minter writes 20 times a second (inserts, and updates of its own rows), so
the catch-up passes and the final lock apply real changes; the counts the migration derives
under the lock are checked against the tables afterwards.

quick: 1 million rows. full: 1 million and 10 million (target: 10 million in <= 10 minutes).
Run alone: `python benchmarks/bench_legacy_migration.py [--full]`.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import pymysql

if __name__ == "__main__":  # runnable before the benchmark harness exists
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.support import (
    BackgroundWriter,
    StopWriting,
    count_rows,
    create_bench_database,
    drop_bench_database,
    main_by_size,
    numbers,
    plain_copy_seconds,
    rows_by_size,
    server_side_rows,
)
from idminter_pipeline.core.canonical_ids import FIRST_CHARACTERS, OTHER_CHARACTERS
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.registry import legacy_migration
from idminter_pipeline.registry.connection import connect
from idminter_pipeline.registry.schema import apply_migrations

BENCHMARK = "legacy_migration"
BATCH_SIZE = 50_000
LEGACY_DDL = (
    "CREATE TABLE `identifiers` (`CanonicalId` varchar(255) NOT NULL, "
    "`OntologyType` varchar(255) NOT NULL, `SourceId` varchar(255) NOT NULL, "
    "`SourceSystem` varchar(255) NOT NULL, PRIMARY KEY (`CanonicalId`), "
    "UNIQUE KEY `UniqueFromSource` (`OntologyType`,`SourceSystem`,`SourceId`)) "
    "ENGINE=InnoDB DEFAULT CHARSET=latin1"
)
# n -> n * MULTIPLIER mod 31**7 is a bijection (gcd 1), so the 7 trailing characters are unique.
MULTIPLIER = 2654435761
SUFFIX_SPACE = 31**7
ROWS_PER_STATEMENT = 1_000_000
# A legacy minter keeps writing throughout, so the final lock has real changes to apply.
LEGACY_WRITES_PER_SECOND = 20.0


def _id_expression() -> str:
    suffix = f"((n * {MULTIPLIER}) % {SUFFIX_SPACE})"
    chars = [f"SUBSTRING('{FIRST_CHARACTERS}', 1 + n % {len(FIRST_CHARACTERS)}, 1)"]
    chars += [
        f"SUBSTRING('{OTHER_CHARACTERS}', 1 + FLOOR({suffix} / {31**k}) % 31, 1)" for k in range(7)
    ]
    return f"CONCAT({', '.join(chars)})"


def generate_legacy_table(settings: DatabaseSettings, rows: int) -> float:
    """Fill a legacy table with `rows` rows server-side; return the seconds it took."""
    started = time.monotonic()
    with server_side_rows(settings) as (conn, cursor):
        cursor.execute(LEGACY_DDL)
        cursor.execute("SET SESSION unique_checks = 0")
        for chunk in range(0, rows, ROWS_PER_STATEMENT):
            size = min(ROWS_PER_STATEMENT, rows - chunk)
            cursor.execute(
                "INSERT INTO identifiers (CanonicalId, OntologyType, SourceId, SourceSystem) "
                f"SELECT {_id_expression()}, "
                "ELT(1 + n % 4, 'Work', 'Work', 'Image', 'Item'), CONCAT('b', n, 'x'), "
                "IF(n % 3 = 0, 'calm-record-id', 'sierra-system-number') "
                f"FROM {numbers(chunk, chunk + size)}"
            )
            conn.commit()
    return time.monotonic() - started


def _baseline(settings: DatabaseSettings, legacy: DatabaseSettings) -> float:
    """The RFC's plain copy: one INSERT ... SELECT per new table, no batches, no verification."""
    return plain_copy_seconds(
        settings,
        [
            "INSERT INTO canonical_ids (CanonicalId, Status) "
            f"SELECT CanonicalId, 'assigned' FROM `{legacy.database}`.identifiers",
            "INSERT INTO identifiers (OntologyType, SourceSystem, SourceId, CanonicalId) "
            "SELECT OntologyType, SourceSystem, SourceId, CanonicalId "
            f"FROM `{legacy.database}`.identifiers",
        ],
    )


class _LegacyMinter(BackgroundWriter):
    """A legacy minter that keeps writing while the migration runs, as production's would:
    `rate` writes a second (two inserts to one update of a row it inserted), until stopped, or
    until the swap makes its writes fail (its random IDs are not in canonical_ids)."""

    seed = 17
    autocommit = True

    def __init__(self, settings: DatabaseSettings, rate: float) -> None:
        super().__init__(settings, rate)
        self.mine: list[str] = []

    def write(self, conn: Any, cursor: Any, canonical: str, rng: random.Random) -> bool:
        try:
            if self.writes % 3 == 2 and self.mine:
                cursor.execute(
                    "UPDATE identifiers SET SourceId = CONCAT(SourceId, '-u') "
                    "WHERE CanonicalId = %s",
                    (rng.choice(self.mine),),
                )
            else:
                cursor.execute(
                    "INSERT INTO identifiers (CanonicalId, OntologyType, SourceId, "
                    "SourceSystem) VALUES (%s, 'Work', %s, 'axiell-collections-id')",
                    (canonical, f"AC-{self.writes}"),
                )
                self.mine.append(canonical)
        except pymysql.err.MySQLError as error:
            if error.args[0] == 1062:  # an ID drawn twice: draw again
                return False
            if error.args[0] in (1452, 1644):
                # identifiers is the new table now: refused by the migration's guard until the
                # swap is recorded, then by the foreign key.
                raise StopWriting from error
            raise
        return True


def _measure(settings: DatabaseSettings, rows: int) -> list[dict[str, Any]]:
    legacy = create_bench_database(settings, "legacy", migrate=False)
    baseline = create_bench_database(settings, "baseline", migrate=False)
    try:
        generated = generate_legacy_table(legacy, rows)
        apply_migrations(lambda: connect(legacy))
        phases: dict[str, float] = {}
        minter = _LegacyMinter(legacy, LEGACY_WRITES_PER_SECOND)
        started = time.monotonic()

        def timing(progress: legacy_migration.Progress) -> None:
            phases.setdefault(progress.phase, time.monotonic() - started)

        minter.start()
        try:
            report = legacy_migration.migrate(
                lambda: connect(legacy), batch_size=BATCH_SIZE, progress=timing
            )
            total = time.monotonic() - started
        finally:
            minter.stop.set()
            minter.join()
        if minter.error:
            raise RuntimeError(f"the legacy minter failed during the migration: {minter.error}")
        # The counts under the lock are derived, not read: check them against the real tables.
        counts = [count_rows(legacy, table) for table in ("identifiers_legacy", "identifiers")]
        if not (report.swapped and report.verified and report.new_rows == counts[0] == counts[1]):
            raise RuntimeError(f"migration of {rows} rows did not complete: {report}, {counts}")
        copy_seconds = phases.get("catching up", total)
        verify_seconds = total - copy_seconds - report.lock_seconds
        plain = _baseline(baseline, legacy)
    finally:
        drop_bench_database(legacy)
        drop_bench_database(baseline)
    label = f"{rows:,} rows"
    detail = (
        f"{label}: generated in {generated:.0f}s; migrate {total:.1f}s (copy {copy_seconds:.1f}s, "
        f"verify+catch-up {verify_seconds:.1f}s, lock+swap {report.lock_seconds:.2f}s), "
        f"batch {BATCH_SIZE}; plain INSERT ... SELECT {plain:.1f}s; a legacy minter wrote "
        f"{minter.writes:,} times meanwhile ({LEGACY_WRITES_PER_SECOND:g}/s)"
    )
    return [
        {
            "benchmark": BENCHMARK,
            "figure": f"migrate+verify {label}",
            "value": round(rows / total),
            "unit": "rows/s",
            "detail": detail,
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"migrate+verify {label} wall time",
            "value": round(total, 1),
            "unit": "s",
            "detail": "target for 10,000,000 rows: <= 600 s",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"plain INSERT ... SELECT {label}",
            "value": round(rows / plain),
            "unit": "rows/s",
            "detail": f"baseline: {plain:.1f}s, no batching, checkpoint or verification",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"final lock held {label}",
            "value": round(report.lock_seconds, 3),
            "unit": "s",
            "detail": f"legacy writers blocked only for this long; {report.lock_rows_read:,} rows "
            f"read and {report.changes_applied_under_lock:,} logged changes applied under it "
            f"({report.changes_applied:,} in all)",
        },
        {
            "benchmark": BENCHMARK,
            "figure": f"rows read under the final lock {label}",
            "value": report.lock_rows_read,
            "unit": "rows",
            "detail": "Handler_read_* delta of the locked section: follows the changes logged "
            "since the verification, not the table",
        },
    ]


def run(settings: DatabaseSettings, *, quick: bool) -> list[dict[str, Any]]:
    return rows_by_size(_measure, settings, quick=quick)


if __name__ == "__main__":
    main_by_size(_measure, __doc__.splitlines()[0], full_by_default=False)
