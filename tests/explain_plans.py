"""EXPLAIN read on every server the suite runs on, whatever its default output format.

MariaDB and MySQL 8.0 answer `EXPLAIN` with the traditional table (one row per table access:
`table`, `type`, `key`, `Extra`); MySQL 9.x answers with the TREE format by default
(`explain_format=TREE`: one text column of `-> Covering index range scan on t using k ...`
lines). `explain` reads either into the same `TableAccess` steps, so a test asserts one plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.registry.connection import Connection

# A TREE line that reads a table: `-> <how> on <table> [using <index>] ...`. The access kinds
# map onto the traditional `type` column, so a test names one set of access types.
_TREE_ACCESS = re.compile(
    r"-> (?P<how>(?:[a-z-]+ )*?(?:index|table) (?:[a-z]+ )*?(?:scan|lookup)) on "
    r"(?P<table>[^\s]+)(?: using (?P<key>[^\s(]+))?",
    re.IGNORECASE,
)
_TREE_TYPES = (
    ("single-row", "eq_ref"),
    ("index range scan", "range"),
    ("index skip scan", "range"),
    ("index lookup", "ref"),
    ("index scan", "index"),
    ("table scan", "ALL"),
)


@dataclass(frozen=True)
class TableAccess:
    table: str
    access: str  # the traditional `type`: const, eq_ref, ref, range, index, ALL
    key: str | None
    index_only: bool  # no row of the table is read: "Using index" / "Covering ..."


def explain(conn: Connection, sql: str, params: Any = None) -> list[TableAccess]:
    with conn.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        names = [d[0].lower() for d in cursor.description]
        rows = cursor.fetchall()
    conn.rollback()
    if names == ["explain"]:
        return [step for (text,) in rows for step in _tree_steps(text)]
    return [_traditional_step(dict(zip(names, row, strict=True))) for row in rows]


def _traditional_step(row: dict[str, Any]) -> TableAccess:
    notes = [note.strip() for note in (row["extra"] or "").split(";")]
    return TableAccess(
        table=row["table"],
        access=row["type"],
        key=row["key"],
        # "Using index condition" is a pushed-down filter, not an index-only read.
        index_only=any(n == "Using index" or n.startswith("Using index for") for n in notes),
    )


def _tree_steps(text: str) -> list[TableAccess]:
    steps = []
    for match in _TREE_ACCESS.finditer(text):
        how = match["how"].lower()
        access = next(kind for phrase, kind in _TREE_TYPES if phrase in how)
        table = match["table"].strip("`")
        steps.append(TableAccess(table, access, match["key"], "covering" in how))
    if not steps:
        raise AssertionError(f"no table access found in the TREE plan:\n{text}")
    return steps
