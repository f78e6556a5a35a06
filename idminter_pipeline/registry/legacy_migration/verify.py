"""The legacy migration's verification: the copy proved equal to the legacy table, both ways.

`verify_copy` compares the whole table without a lock, in keyset chunks: per chunk, counts and
order-independent checksums on both sides, and a row-by-row comparison in both directions only
where they differ. `verify_ids` compares just the IDs it is given, row by row: the catch-up
after the verification re-checks what it applied with it, and the final pass runs it under the
lock on the IDs the change log named, so the lock lasts as long as those few rows take,
whatever the size of the table. Differences raise `LegacyVerificationError`, which names them;
the tables are then not swapped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.core.errors import LegacyVerificationError
from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.legacy_migration.copy import unfit_ids_error
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    LIVE_TABLE,
    NEW_TABLE,
    SOURCE_PARTS,
    Progress,
    ProgressCallback,
    clamp_batch_size,
    column_collation,
    execute,
    fits_new_id_column,
    next_bound_in,
    placeholders,
    range_condition,
)


def _mismatch_sql(legacy: str, new: str, where: str) -> str:
    """Legacy rows (matching `where`) with no identical mapping and assigned ID in the new tables.

    The join converts the legacy values to utf8mb4_bin so it uses the new primary key; the
    byte comparisons then refuse any difference the PAD SPACE collation would hide.
    """

    def utf8(column: str) -> str:
        return f"CONVERT(l.{column} USING utf8mb4) COLLATE utf8mb4_bin"

    return (
        f"SELECT l.CanonicalId FROM {legacy} l "
        f"LEFT JOIN {new} n ON n.OntologyType = {utf8('OntologyType')} "
        f"AND n.SourceSystem = {utf8('SourceSystem')} AND n.SourceId = {utf8('SourceId')} "
        "LEFT JOIN canonical_ids c "
        "ON c.CanonicalId = CONVERT(l.CanonicalId USING ascii) COLLATE ascii_bin "
        f"WHERE ({where}) AND (n.CanonicalId IS NULL OR c.CanonicalId IS NULL "
        "OR c.Status <> 'assigned' "
        "OR CAST(n.CanonicalId AS BINARY) <> CAST(l.CanonicalId AS BINARY) "
        + "".join(
            f"OR CAST(n.{part} AS BINARY) <> CAST({utf8(part)} AS BINARY) "
            for part in ("OntologyType", "SourceSystem", "SourceId")
        )
        + ")"
    )


MAX_REPORTED = 1000


def legacy_id_collation(conn: Connection, legacy: str) -> str:
    """The legacy key column's character set and collation, as `latin1 COLLATE
    latin1_swedish_ci`; read before the final lock, which then runs only the statements it needs.

    The RFC's table is latin1_swedish_ci; a registry created with other defaults must not turn
    lookups by that key into scans, or into an illegal mix of collations.
    """
    return column_collation(conn, legacy, "CanonicalId")


def as_legacy_key(expression: str, collation: str) -> str:
    """`expression` compared the way the legacy primary key compares (so it can use that key)."""
    charset, _, collate = collation.partition(" COLLATE ")
    return f"CONVERT({expression} USING {charset}) COLLATE {collate}"


def _extra_sql(legacy: str, new: str, where: str, collation: str) -> str:
    """Rows of the new table (matching `where`) that are not a legacy row, byte for byte.

    Each row is looked up by the legacy primary key; that collation may find another case of
    the ID, which the byte comparisons then refuse.
    """
    return (
        f"SELECT n.CanonicalId, n.OntologyType, n.SourceSystem, n.SourceId FROM {new} n "
        f"LEFT JOIN {legacy} l ON l.CanonicalId = {as_legacy_key('n.CanonicalId', collation)} "
        f"WHERE ({where}) AND (l.CanonicalId IS NULL "
        "OR CAST(l.CanonicalId AS BINARY) <> CAST(n.CanonicalId AS BINARY) "
        + "".join(
            f"OR CAST(CONVERT(l.{part} USING utf8mb4) AS BINARY) <> CAST(n.{part} AS BINARY) "
            for part in SOURCE_PARTS
        )
        + ")"
    )


def _describe_extra(row: Sequence[str]) -> str:
    canonical, ontology, system, source = row
    return f"{ontology}[{system}/{source}] -> {canonical}"


def ids_with_pending_changes(conn: Connection, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = execute(
        conn,
        f"SELECT DISTINCT CanonicalId FROM {CHANGES_TABLE} "
        f"WHERE CanonicalId IN ({placeholders(ids)})",
        list(ids),
    )
    return {value for (value,) in rows}


def refuse_differences(missing: Sequence[str], extra: Sequence[str], new: str, what: str) -> None:
    """Raise LegacyVerificationError naming both kinds of difference, if there are any."""
    if not missing and not extra:
        return
    more = "+" if len(missing) + len(extra) >= MAX_REPORTED else ""
    kinds = []
    if missing:
        kinds.append(f"{len(missing)}{more} legacy mappings missing or different in {new}")
    if extra:
        kinds.append(
            f"{len(extra)}{more} rows of {new} that are no legacy mapping (shown as -> ID)"
        )
    # Both kinds among the first examples the error prints.
    offending = [*missing[:5], *extra[:5], *missing[5:], *extra[5:]]
    raise LegacyVerificationError(
        f"{what}: {'; '.join(kinds)}; the tables were NOT swapped", offending=offending
    )


@dataclass(frozen=True)
class Verification:
    """What a full comparison saw."""

    # Legacy rows compared: chunk by chunk while legacy writers carry on, so not a snapshot.
    legacy_rows: int
    # Rows of the new table: exact, since only the migration's session writes that table.
    new_rows: int
    chunks: int
    chunks_compared_row_by_row: int


def ascii_bin_max(current: str | None, candidate: str) -> str:
    """The greater of two ASCII keys as ascii_bin orders them: by bytes, and PAD SPACE (a key
    compares as if padded with spaces, so trailing spaces do not count)."""
    if current is None:
        return candidate
    width = max(len(current), len(candidate))
    return candidate if candidate.ljust(width) > current.ljust(width) else current


Bounds = tuple[str | None, str | None]


def comparison_chunks(
    conn: Connection, table: str, batch_size: int, *, until: Callable[[], bool]
) -> Iterator[tuple[tuple[str | None, str] | None, Bounds]]:
    """The chunks a full comparison walks, until `until()` (asked before each): the source's
    keyset range of `batch_size * 5` keys (lower exclusive; None once past the last key) and
    the copy's ascii_bin range, from the greatest boundary seen so far to this chunk's (open
    at the top after the last chunk), so the two collations' orders never leave a row out."""
    chunk = clamp_batch_size(batch_size * 5)
    cursor: str | None = None  # source keyset position, source collation
    low: str | None = None  # copy-side position: the greatest boundary so far, ascii_bin
    while not until():
        upper, count = next_bound_in(conn, table, cursor, chunk)
        if not count:
            yield None, (low, None)
            return
        high = ascii_bin_max(low, upper)
        yield (cursor, upper), (low, high)
        cursor, low = upper, high


def verify_copy(
    conn: Connection,
    *,
    legacy: str = LIVE_TABLE,
    new: str = NEW_TABLE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tolerate_pending: bool = True,
    progress: ProgressCallback | None = None,
) -> Verification:
    """Prove, in keyset chunks, that the legacy table and the new tables hold the same mappings.

    Both directions: every legacy row has a byte-identical mapping with an assigned ID (none is
    missing), and every row of the new table is a legacy row byte for byte (none is extra).
    Chunks follow the legacy primary key, in the legacy collation. The new side of a chunk is
    the ascii_bin range from the greatest chunk boundary seen so far to this chunk's, and after
    the last chunk one more range runs to the end of the key space: the legacy chunks cover
    every legacy row and the new-side ranges every new row, even where the two collations order
    IDs differently (latin1_swedish_ci puts 'ABCD2345' among the a's, ascii_bin before every
    lower-case ID). A chunk whose counts and checksums agree is equal on both sides; any other is
    compared row by row in both directions.

    Raises LegacyVerificationError naming the differences. With `tolerate_pending`, a
    difference whose ID has an unapplied change-log entry is accepted, and such IDs are left out
    of the checksums: each is re-copied and compared again, both ways, under the lock.
    """
    collation = legacy_id_collation(conn, legacy)
    legacy_rows = new_rows = chunks = row_by_row = 0
    missing: list[str] = []
    extra: list[str] = []
    for legacy_bounds, (low, high) in comparison_chunks(
        conn, legacy, batch_size, until=lambda: len(missing) + len(extra) >= MAX_REPORTED
    ):
        if legacy_bounds is not None and not legacy_bounds[1].isascii():
            # Cannot be a boundary in ascii_bin, and cannot be copied either.
            raise unfit_ids_error([legacy_bounds[1]])
        digests = _chunk_digests(
            conn,
            legacy,
            new,
            collation=collation,
            legacy_bounds=legacy_bounds,
            new_bounds=(low, high),
            leave_out_pending=tolerate_pending,
        )
        legacy_rows, new_rows, chunks = (
            legacy_rows + digests.legacy_rows,
            new_rows + digests.new_rows,
            chunks + 1,
        )
        differing: list[str] = []
        surplus: list[Sequence[str]] = []
        if legacy_bounds is not None and not (digests.rows_equal and digests.ids_equal):
            where, params = range_condition("l.CanonicalId", *legacy_bounds)
            rows = execute(
                conn, f"{_mismatch_sql(legacy, new, where)} LIMIT {MAX_REPORTED}", params
            )
            differing = [value for (value,) in rows]
        if not digests.rows_equal:
            where, params = range_condition("n.CanonicalId", low, high)
            surplus = execute(
                conn, f"{_extra_sql(legacy, new, where, collation)} LIMIT {MAX_REPORTED}", params
            )
        if not (digests.rows_equal and digests.ids_equal):
            row_by_row += 1
        if tolerate_pending and (differing or surplus):
            pending = ids_with_pending_changes(conn, [*differing, *(row[0] for row in surplus)])
            differing = [value for value in differing if value not in pending]
            surplus = [row for row in surplus if row[0] not in pending]
        conn.commit()
        missing.extend(differing)
        extra.extend(_describe_extra(row) for row in surplus)
        if legacy_bounds is not None and progress is not None:
            progress(Progress("verifying", legacy_rows, 0, 0, legacy_bounds[1]))
    refuse_differences(missing, extra, new, "the copy does not match the legacy table")
    return Verification(legacy_rows, new_rows, chunks, row_by_row)


def kept_sql(keep: str) -> str:
    """How many rows satisfy `keep`."""
    return f"COALESCE(SUM({keep}), 0)"


def checksum_sql(*columns: str, keep: str = "1") -> str:
    """Order-independent checksum of the rows where `keep` holds: a sum of 60-bit slices of
    the SHA-256s of their exact bytes. SHA2() is built into MariaDB, MySQL 8.0 and 9.x alike;
    MD5() is not (MySQL 9.6 moved it into an optional component)."""
    row = f"CONCAT_WS(CHAR(31 USING utf8mb4), {', '.join(columns)})"
    digest = f"CAST(CONV(SUBSTRING(SHA2({row}, 256), 1, 15), 16, 10) AS UNSIGNED)"
    return f"COALESCE(SUM(IF({keep}, {digest}, 0)), 0)"


def kept_digest(
    conn: Connection,
    table: str,
    where: str,
    params: Sequence[Any],
    *,
    columns: Sequence[str],
    pending: Sequence[str],
    count: bool = False,
) -> tuple[int, ...]:
    """Of `table`'s rows matching `where` (`table` with the alias the columns use), those whose
    ID (the first of `columns`) is not `pending`: how many, and their checksum; with `count`,
    how many rows match at all first."""
    keep = not_in(columns[0], pending)
    selected = f"{kept_sql(keep)}, {checksum_sql(*columns, keep=keep)}"
    return tuple(
        int(value)
        for value in execute(
            conn,
            f"SELECT {'COUNT(*), ' if count else ''}{selected} FROM {table} WHERE {where}",
            [*pending * 2, *params],
        )[0]
    )


def not_in(column: str, values: Sequence[str]) -> str:
    return f"{column} NOT IN ({placeholders(values)})" if values else "1"


# Past this many logged IDs in one chunk, the chunk's digests include them (and will differ).
MAX_EXCLUDED_PER_CHUNK = 10_000


def _pending_in_chunk(
    conn: Connection,
    collation: str,
    legacy_bounds: tuple[str | None, str] | None,
    new_bounds: tuple[str | None, str | None],
) -> tuple[list[str], list[str]]:
    """IDs with pending change-log entries inside this chunk: in the legacy range (legacy
    collation) and in the new-side range (binary; the log's utf8mb4_bin orders ASCII as
    ascii_bin does). A small scan of the log, which holds only the writes since the last
    catch-up pass."""

    def logged(column: str, bounds: tuple[str | None, str | None]) -> list[str]:
        where, params = range_condition(column, *bounds)
        ids = [
            value
            for (value,) in execute(
                conn,
                f"SELECT DISTINCT g.CanonicalId FROM {CHANGES_TABLE} g WHERE {where} "
                f"LIMIT {MAX_EXCLUDED_PER_CHUNK + 1}",
                params,
            )
        ]
        return ids if len(ids) <= MAX_EXCLUDED_PER_CHUNK else []

    legacy_ids = (
        logged(as_legacy_key("g.CanonicalId", collation), legacy_bounds) if legacy_bounds else []
    )
    return legacy_ids, logged("g.CanonicalId", new_bounds)


@dataclass(frozen=True)
class _ChunkDigests:
    legacy_rows: int
    new_rows: int  # every row of the new-side range, pending or not
    rows_equal: bool  # both sides hold the same rows, byte for byte, but for pending IDs
    ids_equal: bool  # the legacy IDs are exactly the assigned IDs, but for pending IDs


def _chunk_digests(
    conn: Connection,
    legacy: str,
    new: str,
    *,
    collation: str,
    legacy_bounds: tuple[str | None, str] | None,
    new_bounds: tuple[str | None, str | None],
    leave_out_pending: bool,
) -> _ChunkDigests:
    """Counts and checksums of one chunk on both sides, by sequential range scans only.

    Rows whose IDs have pending change-log entries are left out of the checksums on both sides:
    they are re-copied and re-checked under the lock anyway, and a legacy minter writing during
    the verification would otherwise make nearly every chunk differ and be compared row by row.
    (The legacy side leaves out the IDs equal to a pending one in its own collation; the lock
    re-checks those too, since it looks up legacy rows in that collation.)

    The new side reads its range through idx_canonical, which covers every column. Digests
    still differ for a real difference, an ID the two collations order differently, or an
    assigned ID whose legacy row was deleted (kept assigned on purpose); the row-by-row
    comparison then decides.
    """
    legacy_pending, new_pending = (
        _pending_in_chunk(conn, collation, legacy_bounds, new_bounds)
        if leave_out_pending
        else ([], [])
    )
    legacy_digest = (0, 0, 0, 0)
    if legacy_bounds is not None:
        where, params = range_condition("l.CanonicalId", *legacy_bounds)
        keep = not_in("l.CanonicalId", legacy_pending)
        utf8 = [f"CONVERT(l.{c} USING utf8mb4)" for c in ("CanonicalId", *SOURCE_PARTS)]
        row = execute(
            conn,
            f"SELECT COUNT(*), {kept_sql(keep)}, {checksum_sql(*utf8, keep=keep)}, "
            f"{checksum_sql(utf8[0], keep=keep)} FROM {legacy} l WHERE {where}",
            # `keep` appears three times in the select list, which comes before WHERE.
            [*legacy_pending * 3, *params],
        )[0]
        legacy_digest = tuple(int(value) for value in row)
    where, params = range_condition("n.CanonicalId", *new_bounds)
    new_total, new_kept, new_sum = kept_digest(
        conn,
        f"{new} n",
        where,
        params,
        columns=("n.CanonicalId", *(f"n.{part}" for part in SOURCE_PARTS)),
        pending=new_pending,
        count=True,
    )
    where, params = range_condition("c.CanonicalId", *new_bounds)
    id_kept, id_sum = kept_digest(
        conn,
        "canonical_ids c",
        f"{where} AND c.Status = 'assigned'",
        params,
        columns=("c.CanonicalId",),
        pending=new_pending,
    )
    legacy_total, legacy_kept, legacy_row_sum, legacy_id_sum = legacy_digest
    return _ChunkDigests(
        legacy_rows=legacy_total,
        new_rows=new_total,
        rows_equal=(legacy_kept, legacy_row_sum) == (new_kept, new_sum),
        ids_equal=(legacy_kept, legacy_id_sum) == (id_kept, id_sum),
    )


def id_parts(ids: Collection[str]) -> Iterator[tuple[list[str], list[str]]]:
    """The distinct IDs in order, 1,000 at a time, each part with those of its IDs the copy's
    ASCII column can hold (the only ones the copy can have rows for: the re-copy refuses the
    rest first)."""
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), 1000):
        part = ordered[start : start + 1000]
        yield part, [value for value in part if fits_new_id_column(value)]


def verify_ids(
    conn: Connection,
    legacy: str,
    new: str,
    ids: Collection[str],
    collation: str | None,
    *,
    tolerate_pending: bool = False,
) -> None:
    """Row-by-row comparison of the given IDs: their legacy rows are all in the new tables and,
    given the legacy key's `collation`, their rows in the new table are all legacy rows (an ID
    the legacy table no longer has must have no row left). Proportional to the IDs; used under
    the lock."""
    missing: list[str] = []
    extra: list[Sequence[str]] = []
    for part, fitting in id_parts(ids):
        rows = execute(
            conn, _mismatch_sql(legacy, new, f"l.CanonicalId IN ({placeholders(part)})"), part
        )
        missing.extend(value for (value,) in rows)
        if collation is not None and fitting:
            rows = execute(
                conn,
                _extra_sql(legacy, new, f"n.CanonicalId IN ({placeholders(fitting)})", collation),
                fitting,
            )
            extra.extend(rows)
    if tolerate_pending and (missing or extra):
        # Changed again since it was applied: re-copied and re-checked later, under the lock.
        pending = ids_with_pending_changes(conn, [*missing, *(row[0] for row in extra)])
        missing = [value for value in missing if value not in pending]
        extra = [row for row in extra if row[0] not in pending]
    refuse_differences(
        missing,
        [_describe_extra(row) for row in extra],
        new,
        "legacy mappings changed since the verification do not match",
    )
