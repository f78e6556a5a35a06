"""Keyset batches over an indexed column: how the reconciliation scans read tables of any size.

`keyset_ranges` yields successive `(lower, upper]` bounds of about `batch_size` index entries
each, committing after each bound is read, so every statement of a scan touches one batch of
rows and no transaction stays open across batches. `range_condition` and `range_params` turn a
bound into the matching WHERE clause and its parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from idminter_pipeline.registry.connection import Connection


def execute(conn: Connection, sql: str, params: Sequence[Any] | None = None) -> Any:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# A keyset bound: a canonical ID, or a hash in the variant scan's temporary tables.
Key = str | int


def keyset_ranges(
    conn: Connection, table: str, column: str, batch_size: int
) -> Iterator[tuple[Key | None, Key]]:
    """Successive (lower, upper] bounds over an indexed column, `batch_size` entries each (more
    when the column repeats the upper bound: every row with that value is in its batch)."""
    lower: Key | None = None
    while True:
        after = f"WHERE {column} > %s " if lower is not None else ""
        params = (lower,) if lower is not None else None
        # LIMIT 1 OFFSET walks the index without materializing the batch in a temporary table.
        rows = execute(
            conn,
            f"SELECT {column} FROM {table} {after}ORDER BY {column} "
            f"LIMIT 1 OFFSET {int(batch_size) - 1}",
            params,
        )
        if rows:
            upper, count = rows[0][0], batch_size
        else:
            upper, count = execute(
                conn, f"SELECT MAX({column}), COUNT(*) FROM {table} {after}", params
            )[0]
        conn.commit()
        if not count:
            return
        yield lower, upper
        lower = upper


def range_condition(column: str, lower: Key | None) -> str:
    return f"{column} <= %s" if lower is None else f"{column} > %s AND {column} <= %s"


def range_params(lower: Key | None, upper: Key) -> list[Key]:
    return [upper] if lower is None else [lower, upper]
