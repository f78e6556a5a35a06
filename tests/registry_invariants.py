"""An independent SQL oracle for the registry's invariants, used by the reliability tests and by
`make stress` (`benchmarks/stress.py`).

It reads only committed rows of `identifiers` and `canonical_ids` and shares no code with the
minter. What the clients saw (the IDs they were given, the predecessors they declared, the sources
they asked for) is loaded into scratch tables so every check is one SQL statement. Scratch tables
are ordinary tables with a unique name, dropped afterwards: MySQL 8 cannot refer to a TEMPORARY
table twice in one query, and the recursive check needs that.

The invariants:
- one ID per source (the primary key says so; the check shows it to the reader of a report);
- an ID is shared by several sources only through declared predecessors: in every group of
  sources sharing an ID exactly one source (the original) has no declared predecessor inside the
  group, and every other source is reachable from it along declared predecessor edges;
- every referenced ID is in the pool and `assigned`; every `assigned` ID is referenced (so no
  transaction left a claimed-but-unused ID behind);
- every ID a client was given is the registry's ID for that source;
- every source a client asked for is mapped (after re-running, the work is complete);
- a batch is all-or-nothing: of the sources only that batch asked for, none or all are mapped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.minting_workload import crash_batches
from idminter_pipeline.core.settings import DatabaseSettings
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, connect

Key = tuple[str, str, str]
KeyLike = str | SourceIdentifier | Key

# Tables of yoyo-migrations, which no mint may touch and snapshots leave out.
_BOOKKEEPING = ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")
_SAMPLE = 10

_KEY_COLUMNS = """
  OntologyType VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SourceSystem VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  SourceId VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"""


def as_key(value: KeyLike) -> Key:
    if isinstance(value, SourceIdentifier):
        return value.as_key()
    if isinstance(value, str):
        return SourceIdentifier.parse(value).as_key()
    return (value[0], value[1], value[2])


@dataclass
class InvariantReport:
    """What was checked (name -> rows examined) and what broke (name -> sample rows)."""

    checked: dict[str, int] = field(default_factory=dict)
    violations: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        lines = [f"registry: {self.counts}"]
        for name, examined in self.checked.items():
            bad = self.violations.get(name)
            verdict = f"VIOLATED, e.g. {bad[:3]}" if bad else "ok"
            lines.append(f"  {name} ({examined} rows examined): {verdict}")
        return lines

    def assert_ok(self) -> None:
        assert self.ok, "registry invariants violated:\n" + "\n".join(self.lines())


def _fetch(conn: Connection, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@contextmanager
def _scratch(conn: Connection, columns: str) -> Iterator[str]:
    name = f"oracle_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE `{name}` ({columns}) ENGINE=InnoDB "
            "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        )
    try:
        yield name
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{name}`")


def _load(conn: Connection, table: str, columns: int, rows: Iterable[tuple[Any, ...]]) -> int:
    placeholders = ", ".join(["%s"] * columns)
    batch: list[tuple[Any, ...]] = []
    loaded = 0
    with conn.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) == 2_000:
                cursor.executemany(f"INSERT INTO `{table}` VALUES ({placeholders})", batch)
                loaded += len(batch)
                batch = []
        if batch:
            cursor.executemany(f"INSERT INTO `{table}` VALUES ({placeholders})", batch)
            loaded += len(batch)
    conn.commit()
    return loaded


def _check(report: InvariantReport, name: str, examined: int, rows: list[tuple[Any, ...]]) -> None:
    report.checked[name] = examined
    if rows:
        report.violations[name] = rows[:_SAMPLE] + ([("...",)] if len(rows) > _SAMPLE else [])


def _core_checks(conn: Connection, report: InvariantReport) -> None:
    (mappings,) = _fetch(conn, "SELECT COUNT(*) FROM identifiers")[0]
    status = dict(_fetch(conn, "SELECT Status, COUNT(*) FROM canonical_ids GROUP BY Status"))
    report.counts = {
        "mappings": mappings,
        "assigned": status.get("assigned", 0),
        "free": status.get("free", 0),
    }
    _check(
        report,
        "one ID per source",
        mappings,
        _fetch(
            conn,
            "SELECT OntologyType, SourceSystem, SourceId, COUNT(DISTINCT CanonicalId) "
            "FROM identifiers GROUP BY OntologyType, SourceSystem, SourceId "
            "HAVING COUNT(DISTINCT CanonicalId) > 1 OR COUNT(*) > 1",
        ),
    )
    _check(
        report,
        "every referenced ID is assigned",
        mappings,
        _fetch(
            conn,
            "SELECT i.OntologyType, i.SourceSystem, i.SourceId, i.CanonicalId, c.Status "
            "FROM identifiers i LEFT JOIN canonical_ids c ON c.CanonicalId = i.CanonicalId "
            "WHERE c.CanonicalId IS NULL OR c.Status <> 'assigned'",
        ),
    )
    _check(
        report,
        "every assigned ID is referenced",
        report.counts["assigned"],
        _fetch(
            conn,
            "SELECT c.CanonicalId FROM canonical_ids c WHERE c.Status = 'assigned' "
            "AND NOT EXISTS (SELECT 1 FROM identifiers i WHERE i.CanonicalId = c.CanonicalId)",
        ),
    )


def _sharing_check(
    conn: Connection, report: InvariantReport, declared: Iterable[tuple[KeyLike, KeyLike]]
) -> None:
    columns = (
        "SOntologyType VARCHAR(255) NOT NULL, SSourceSystem VARCHAR(255) NOT NULL, "
        "SSourceId VARCHAR(255) NOT NULL, POntologyType VARCHAR(255) NOT NULL, "
        "PSourceSystem VARCHAR(255) NOT NULL, PSourceId VARCHAR(255) NOT NULL, "
        "INDEX (SOntologyType, SSourceSystem, SSourceId), "
        "INDEX (POntologyType, PSourceSystem, PSourceId)"
    )
    with _scratch(conn, columns) as edges:
        _load(
            conn,
            edges,
            6,
            ((*as_key(successor), *as_key(predecessor)) for successor, predecessor in declared),
        )
        # `inherited`: members whose declared predecessor holds the same ID. `roots`: the rest.
        # `reach`: from each root along declared edges, staying on the group's ID.
        members = (
            "SELECT i.OntologyType, i.SourceSystem, i.SourceId, i.CanonicalId FROM identifiers i "
            "JOIN (SELECT CanonicalId FROM identifiers GROUP BY CanonicalId "
            "HAVING COUNT(*) > 1) s ON s.CanonicalId = i.CanonicalId"
        )
        has_inside_predecessor = (
            f"EXISTS (SELECT 1 FROM `{edges}` e JOIN identifiers p "
            "ON p.OntologyType = e.POntologyType AND p.SourceSystem = e.PSourceSystem "
            "AND p.SourceId = e.PSourceId "
            "WHERE e.SOntologyType = m.OntologyType AND e.SSourceSystem = m.SourceSystem "
            "AND e.SSourceId = m.SourceId AND p.CanonicalId = m.CanonicalId "
            "AND NOT (p.OntologyType = m.OntologyType AND p.SourceSystem = m.SourceSystem "
            "AND p.SourceId = m.SourceId))"
        )
        (shared_groups, shared_members) = _fetch(
            conn, f"SELECT COUNT(DISTINCT CanonicalId), COUNT(*) FROM ({members}) m"
        )[0]
        _check(
            report,
            "a shared ID has exactly one original (the rest declared a predecessor)",
            shared_groups,
            _fetch(
                conn,
                f"SELECT m.CanonicalId, SUM(CASE WHEN {has_inside_predecessor} THEN 0 ELSE 1 END)"
                f" AS originals FROM ({members}) m GROUP BY m.CanonicalId HAVING originals <> 1",
            ),
        )
        _check(
            report,
            "IDs are shared only through declared predecessors (reachable from the original)",
            shared_members,
            _fetch(
                conn,
                f"WITH RECURSIVE members AS ({members}), "
                "reach (OntologyType, SourceSystem, SourceId, CanonicalId) AS ("
                f"  SELECT m.OntologyType, m.SourceSystem, m.SourceId, m.CanonicalId "
                f"  FROM members m WHERE NOT {has_inside_predecessor} "
                "  UNION "
                "  SELECT n.OntologyType, n.SourceSystem, n.SourceId, n.CanonicalId "
                f"  FROM reach r JOIN `{edges}` e ON e.POntologyType = r.OntologyType "
                "  AND e.PSourceSystem = r.SourceSystem AND e.PSourceId = r.SourceId "
                "  JOIN members n ON n.OntologyType = e.SOntologyType "
                "  AND n.SourceSystem = e.SSourceSystem AND n.SourceId = e.SSourceId "
                "  AND n.CanonicalId = r.CanonicalId) "
                "SELECT m.OntologyType, m.SourceSystem, m.SourceId, m.CanonicalId "
                "FROM members m WHERE NOT EXISTS (SELECT 1 FROM reach r "
                "WHERE r.OntologyType = m.OntologyType AND r.SourceSystem = m.SourceSystem "
                "AND r.SourceId = m.SourceId)",
            ),
        )
    conn.commit()


def _given_check(
    conn: Connection, report: InvariantReport, given: Iterable[tuple[KeyLike, str]]
) -> None:
    columns = f"{_KEY_COLUMNS}, CanonicalId VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin"
    with _scratch(conn, columns) as table:
        loaded = _load(conn, table, 4, ((*as_key(source), cid) for source, cid in given))
        _check(
            report,
            "every ID a client was given is the registry's ID for that source",
            loaded,
            _fetch(
                conn,
                "SELECT g.OntologyType, g.SourceSystem, g.SourceId, g.CanonicalId, "
                f"i.CanonicalId FROM `{table}` g LEFT JOIN identifiers i "
                "ON i.OntologyType = g.OntologyType AND i.SourceSystem = g.SourceSystem "
                "AND i.SourceId = g.SourceId "
                "WHERE i.CanonicalId IS NULL OR i.CanonicalId <> g.CanonicalId",
            ),
        )
    conn.commit()


def _batches_check(
    conn: Connection,
    report: InvariantReport,
    requested: Mapping[str, Iterable[KeyLike]],
    *,
    atomic: bool,
    complete: bool,
) -> None:
    columns = (
        f"Batch VARCHAR(64) NOT NULL, {_KEY_COLUMNS}, INDEX (OntologyType, SourceSystem, SourceId)"
    )
    with _scratch(conn, columns) as table:
        loaded = _load(
            conn,
            table,
            4,
            ((batch, *as_key(key)) for batch, keys in requested.items() for key in set(keys)),
        )
        mapped = (
            "SELECT r.Batch, r.OntologyType, r.SourceSystem, r.SourceId, "
            "(i.CanonicalId IS NOT NULL) AS mapped, "
            f"(SELECT COUNT(*) FROM `{table}` o WHERE o.OntologyType = r.OntologyType "
            "AND o.SourceSystem = r.SourceSystem AND o.SourceId = r.SourceId) AS batches "
            f"FROM `{table}` r LEFT JOIN identifiers i ON i.OntologyType = r.OntologyType "
            "AND i.SourceSystem = r.SourceSystem AND i.SourceId = r.SourceId"
        )
        if complete:
            _check(
                report,
                "every requested source is mapped",
                loaded,
                _fetch(
                    conn,
                    f"SELECT Batch, OntologyType, SourceSystem, SourceId FROM ({mapped}) x "
                    "WHERE NOT x.mapped",
                ),
            )
        if atomic:
            # Only sources no other batch asked for say whether this batch committed.
            _check(
                report,
                "no partial batch: a batch's own sources are all mapped or none is",
                len(requested),
                _fetch(
                    conn,
                    f"SELECT Batch, SUM(mapped), COUNT(*) FROM ({mapped}) x WHERE x.batches = 1 "
                    "GROUP BY Batch HAVING SUM(mapped) NOT IN (0, COUNT(*))",
                ),
            )
    conn.commit()


def check_registry(
    settings: DatabaseSettings,
    *,
    declared: Iterable[tuple[KeyLike, KeyLike]] = (),
    given: Iterable[tuple[KeyLike, str]] = (),
    requested: Mapping[str, Iterable[KeyLike]] | None = None,
    atomic_batches: bool = False,
    complete: bool = False,
) -> InvariantReport:
    """Every invariant over the committed registry, given what the clients did.

    `declared`: (successor, predecessor) pairs clients sent; `given`: (source, ID) pairs clients
    received; `requested`: batch label -> sources, checked for completeness when `complete` and
    for all-or-nothing when `atomic_batches`.
    """
    report = InvariantReport()
    conn = connect(settings)
    try:
        with conn.cursor() as cursor:
            # Keep the recursive query's work tables in memory (MariaDB once failed to delete an
            # on-disk one under a loaded shared server). Session variables: no privilege needed.
            cursor.execute(
                "SET SESSION max_heap_table_size = 268435456, tmp_table_size = 268435456"
            )
        _core_checks(conn, report)
        _sharing_check(conn, report, declared)
        _given_check(conn, report, given)
        if requested is not None and (atomic_batches or complete):
            _batches_check(conn, report, requested, atomic=atomic_batches, complete=complete)
    finally:
        conn.rollback()
        conn.close()
    return report


def registry_snapshot(settings: DatabaseSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table (not yoyo's), in primary-key order, to compare later."""
    conn = connect(settings)
    try:
        tables = [
            name
            for (name,) in _fetch(
                conn,
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' "
                "ORDER BY table_name",
            )
            if name not in _BOOKKEEPING
        ]
        snapshot = {}
        for table in tables:
            rows = _fetch(conn, f"SELECT * FROM `{table}`")
            snapshot[table] = sorted(rows, key=repr)
        return snapshot
    finally:
        conn.rollback()
        conn.close()


def check_crash_run(
    settings: DatabaseSettings,
    batches: int,
    works: int,
    *,
    complete: bool,
    given: list[tuple[str, str]],
    begun: set[int] | None = None,
) -> InvariantReport:
    """The invariants after a crash drill over `crash_batches(batches, works)`: batches a
    worker began are all-or-nothing, and with `complete` every requested source is mapped."""
    requested = crash_batches(batches, works)
    if begun is not None:  # only batches a worker began can be partly written
        requested = {b: requests for b, requests in requested.items() if b in begun}
    return check_registry(
        settings,
        given=given,
        declared=[
            (r.source, r.predecessor)
            for requests in requested.values()
            for r in requests
            if r.predecessor is not None
        ],
        requested={str(b): [r.source for r in requests] for b, requests in requested.items()},
        atomic_batches=True,
        complete=complete,
    )
