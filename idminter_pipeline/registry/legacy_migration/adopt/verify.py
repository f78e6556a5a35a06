"""The adoption's verification: the copies proved equal to the port's tables, both ways.

`verify_adoption` compares both tables without a lock: first counts and order-independent
checksums of each whole table on both sides, in one read view (sequential scans); only if they
differ, chunk by chunk of the port's canonical_ids key, row by row in both directions where a
chunk differs. `_verify_ids` compares just the IDs it is given, row by row: the catch-up
rounds after the verification and the final pass under the lock run it on the IDs the change
log named. Differences raise `LegacyVerificationError`, which names them; nothing is swapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.legacy_migration.adopt.copy import (
    BEFORE_SWAP,
    IDS,
    MAPPINGS,
    NEW_IDS,
    NEW_MAPPINGS,
    _ascii,
    _source_collation,
    _Tables,
    _utf8,
)
from idminter_pipeline.registry.legacy_migration.state import (
    _SOURCE_PARTS,
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    Progress,
    ProgressCallback,
    _execute,
    _fits_new_id_column,
    _next_bound_in,
    _placeholders,
    clamp_batch_size,
)
from idminter_pipeline.registry.legacy_migration.verify import (
    MAX_REPORTED,
    _as_legacy_key,
    _ascii_bin_max,
    _checksum,
    _ids_with_pending_changes,
    _kept,
    _not_in,
    _range_condition,
    _refuse_differences,
)

# -- verification: both directions, both tables ----------------------------------------------------


def _parts_differ(left: str, right: str) -> str:
    """SQL true when a mapping's parts, ID or CreatedAt differ byte for byte (`left` the port's
    row, `right` the copy's)."""
    return (
        f"CAST({right}.CanonicalId AS BINARY) <> CAST({left}.CanonicalId AS BINARY) "
        + "".join(
            f"OR CAST({right}.{part} AS BINARY) <> CAST({_utf8(f'{left}.{part}')} AS BINARY) "
            for part in _SOURCE_PARTS
        )
        + f"OR NOT (CAST({right}.CreatedAt AS DATETIME(6)) <=> "
        f"CAST({left}.CreatedAt AS DATETIME(6)))"
    )


def _missing_sql(tb: _Tables, where_mappings: str, where_ids: str) -> tuple[str, str]:
    """The port's rows with no identical copy: mappings (by key), canonical IDs (by ID)."""
    same_key = " AND ".join(f"n.{part} = {_utf8(f'l.{part}')}" for part in _SOURCE_PARTS)
    mappings = (
        f"SELECT l.CanonicalId FROM {tb.mappings} l LEFT JOIN {tb.new_mappings} n ON {same_key} "
        f"WHERE ({where_mappings}) AND (n.CanonicalId IS NULL OR {_parts_differ('l', 'n')})"
    )
    ids = (
        f"SELECT cs.CanonicalId FROM {tb.ids} cs LEFT JOIN {tb.new_ids} cn "
        f"ON cn.CanonicalId = {_ascii('cs.CanonicalId')} WHERE ({where_ids}) AND "
        "(cn.CanonicalId IS NULL OR CAST(cn.CanonicalId AS BINARY) <> CAST(cs.CanonicalId AS "
        "BINARY) OR CAST(cn.Status AS BINARY) <> CAST(cs.Status AS BINARY))"
    )
    return mappings, ids


def _extra_sql(
    tb: _Tables, where_mappings: str, where_ids: str, key: str, id_key: str
) -> tuple[str, str]:
    """The copy's rows that are no port row: each looked up by the port's own key (in its
    collation, `key` / `id_key`), then compared byte for byte."""
    same_key = " AND ".join(
        f"l.{part} = {_as_legacy_key(f'n.{part}', key)}" for part in _SOURCE_PARTS
    )
    mappings = (
        "SELECT n.CanonicalId, n.OntologyType, n.SourceSystem, n.SourceId "
        f"FROM {tb.new_mappings} n LEFT JOIN {tb.mappings} l ON {same_key} "
        f"WHERE ({where_mappings}) AND (l.CanonicalId IS NULL OR {_parts_differ('l', 'n')})"
    )
    ids = (
        f"SELECT cn.CanonicalId FROM {tb.new_ids} cn LEFT JOIN {tb.ids} cs "
        f"ON cs.CanonicalId = {_as_legacy_key('cn.CanonicalId', id_key)} "
        f"WHERE ({where_ids}) AND (cs.CanonicalId IS NULL OR CAST(cn.CanonicalId AS BINARY) <> "
        "CAST(cs.CanonicalId AS BINARY) OR CAST(cn.Status AS BINARY) <> CAST(cs.Status AS BINARY))"
    )
    return mappings, ids


@dataclass(frozen=True)
class _Keys:
    mapping: str  # the port's identifiers key parts, `charset COLLATE collation`
    canonical: str  # the port's CanonicalId columns


def _keys(conn: Connection) -> _Keys:
    return _Keys(
        _source_collation(conn, MAPPINGS, "SourceId"),
        _source_collation(conn, IDS, "CanonicalId"),
    )


def _describe(row: Sequence[str]) -> str:
    canonical, ontology, system, source = row
    return f"{ontology}[{system}/{source}] -> {canonical}"


def _compare(
    conn: Connection,
    tb: _Tables,
    keys: _Keys | None,
    port_where: tuple[str, list[Any]],
    copy_where: tuple[str, list[Any]],
    *,
    tolerate_pending: bool,
) -> tuple[list[str], list[str]]:
    """Row by row, both directions, both tables: (missing from the copy, extra in the copy)."""
    where, params = port_where
    missing_mappings, missing_ids = _missing_sql(tb, where.format(t="l"), where.format(t="cs"))
    missing = [
        value
        for sql in (missing_mappings, missing_ids)
        for (value,) in _execute(conn, f"{sql} LIMIT {MAX_REPORTED}", params)
    ]
    extra_rows: list[Any] = []
    extra_ids_rows: list[Any] = []
    if keys is not None:  # None once live: the copy may rightly gain rows of its own
        where, params = copy_where
        extra_mappings, extra_ids = _extra_sql(
            tb, where.format(t="n"), where.format(t="cn"), keys.mapping, keys.canonical
        )
        extra_rows = _execute(conn, f"{extra_mappings} LIMIT {MAX_REPORTED}", params)
        extra_ids_rows = _execute(conn, f"{extra_ids} LIMIT {MAX_REPORTED}", params)
    extra = [_describe(row) for row in extra_rows] + [
        f"canonical ID {value}" for (value,) in extra_ids_rows
    ]
    if tolerate_pending and (missing or extra_rows or extra_ids_rows):
        pending = _ids_with_pending_changes(
            conn,
            [*missing, *(row[0] for row in extra_rows), *(value for (value,) in extra_ids_rows)],
        )
        missing = [value for value in missing if value not in pending]
        extra = [_describe(row) for row in extra_rows if row[0] not in pending] + [
            f"canonical ID {value}" for (value,) in extra_ids_rows if value not in pending
        ]
    return missing, extra


# Past this many logged IDs, the digests include them (and differ; row by row then decides).
MAX_EXCLUDED = 10_000


def _pending_ids(conn: Connection) -> list[str]:
    """IDs the change log names (a small table: the writes since the last catch-up)."""
    ids = [
        value
        for (value,) in _execute(
            conn, f"SELECT DISTINCT CanonicalId FROM {CHANGES_TABLE} LIMIT {MAX_EXCLUDED + 1}"
        )
    ]
    return ids if len(ids) <= MAX_EXCLUDED else []


def _side_digest(
    conn: Connection,
    *,
    mappings_table: str,
    ids_table: str,
    aliases: tuple[str, str],
    where: str,
    params: list[Any],
    pending: list[str],
) -> tuple[int, tuple[int, int, int, int]]:
    """One side of a chunk: its mappings' count, and (kept mappings, their checksum, kept
    canonical IDs, theirs), leaving out the `pending` IDs. Both sides' values are converted to
    the same bytes (utf8mb4 parts, CreatedAt as DATETIME(6)), so equal rows sum alike."""
    alias, id_alias = aliases
    keep = _not_in(f"{alias}.CanonicalId", pending)
    columns = [
        f"{alias}.CanonicalId",
        *(_utf8(f"{alias}.{part}") for part in _SOURCE_PARTS),
        f"CAST({alias}.CreatedAt AS DATETIME(6))",
    ]
    total, kept, checksum = (
        int(value)
        for value in _execute(
            conn,
            f"SELECT COUNT(*), {_kept(keep)}, {_checksum(*columns, keep=keep)} "
            f"FROM {mappings_table} {alias} WHERE {where.format(t=alias)}",
            [*pending * 2, *params],
        )[0]
    )
    id_keep = _not_in(f"{id_alias}.CanonicalId", pending)
    id_columns = (f"{id_alias}.CanonicalId", f"{id_alias}.Status")
    id_kept, id_sum = (
        int(value)
        for value in _execute(
            conn,
            f"SELECT {_kept(id_keep)}, {_checksum(*id_columns, keep=id_keep)} "
            f"FROM {ids_table} {id_alias} WHERE {where.format(t=id_alias)}",
            [*pending * 2, *params],
        )[0]
    )
    return total, (kept, checksum, id_kept, id_sum)


def _start_read_view(conn: Connection) -> None:
    """A new transaction reading one snapshot: the adoption's session is READ COMMITTED (its
    copy reads the port's rows without locking them), where each statement would see other
    writes, and digests taken a statement apart would differ."""
    conn.commit()
    _execute(conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    _execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")


def _subtract(whole: tuple[int, ...], part: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(whole, part, strict=True))


def _whole_tables_match(conn: Connection, *, tolerate_pending: bool) -> int | None:
    """The copy's mapping count if both whole tables digest alike on both sides, else None.

    One read view holds the port's tables, the change log and the copies alike. Each side is
    digested whole (a scan in primary-key order, CreatedAt read with its row); with
    `tolerate_pending`, the logged IDs' own digests, found by key, are subtracted, so what is
    compared is every unlogged row. None too when the log names more than MAX_EXCLUDED IDs:
    the chunks then find what differs.
    """
    _start_read_view(conn)
    try:
        logged_ids = _execute(
            conn, f"SELECT DISTINCT CanonicalId FROM {CHANGES_TABLE} LIMIT {MAX_EXCLUDED + 1}"
        )
        if len(logged_ids) > MAX_EXCLUDED:
            return None
        pending = [value for (value,) in logged_ids] if tolerate_pending else []
        fitting = [value for value in pending if _fits_new_id_column(value)]
        digests = []
        for mappings_table, ids_table, aliases, logged in (
            (MAPPINGS, IDS, ("l", "cs"), pending),
            (NEW_MAPPINGS, NEW_IDS, ("n", "cn"), fitting),
        ):
            total, whole = _side_digest(
                conn,
                mappings_table=mappings_table,
                ids_table=ids_table,
                aliases=aliases,
                where="1 = 1",
                params=[],
                pending=[],
            )
            _, of_logged = (
                _side_digest(
                    conn,
                    mappings_table=mappings_table,
                    ids_table=ids_table,
                    aliases=aliases,
                    where=f"{{t}}.CanonicalId IN ({_placeholders(logged)})",
                    params=list(logged),
                    pending=[],
                )
                if logged
                else (0, (0, 0, 0, 0))
            )
            digests.append((total, _subtract(whole, of_logged)))
    finally:
        conn.commit()
    (_, port_digest), (copy_total, copy_digest) = digests
    return copy_total if port_digest == copy_digest else None


@dataclass(frozen=True)
class AdoptionVerification:
    mappings: int  # rows of the copy of identifiers
    chunks: int
    chunks_compared_row_by_row: int


def verify_adoption(
    conn: Connection,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tolerate_pending: bool = True,
    progress: ProgressCallback | None = None,
) -> AdoptionVerification:
    """Prove the copies equal to the port's tables: whole, else in chunks of the port's
    canonical_ids key.

    First both whole tables on both sides, in one read view (`_whole_tables_match`): equal
    digests prove every row in both directions, and end it. Else, per chunk, counts and
    order-independent checksums of both tables on both sides (mappings with their converted
    parts, ID and CreatedAt; canonical IDs with their Status); a chunk that differs is compared
    row by row in both directions. As in the legacy kind, the copy's side
    of a chunk is the ascii_bin range up to the greatest boundary seen so far, so the two
    collations' orders never leave a row out. IDs with pending change-log entries are left out
    with `tolerate_pending`: they are re-copied and re-checked under the lock.
    """
    whole = _whole_tables_match(conn, tolerate_pending=tolerate_pending)
    if whole is not None:
        if progress is not None:
            progress(Progress("verifying", whole, 0, 0, None))
        return AdoptionVerification(whole, 1, 0)
    chunk = clamp_batch_size(batch_size * 5)
    keys = _keys(conn)
    cursor: str | None = None
    low: str | None = None
    mappings = chunks = row_by_row = 0
    missing: list[str] = []
    extra: list[str] = []
    while len(missing) + len(extra) < MAX_REPORTED:
        _start_read_view(conn)
        upper, count = _next_bound_in(conn, IDS, cursor, chunk)
        high = _ascii_bin_max(low, upper) if count else None
        pending = _pending_ids(conn) if tolerate_pending else []
        port_where, port_params = (
            _range_condition("{t}.CanonicalId", cursor, upper) if count else ("1 = 0", [])
        )
        copy_where, copy_params = _range_condition("{t}.CanonicalId", low, high)
        _, port_digest = _side_digest(
            conn,
            mappings_table=MAPPINGS,
            ids_table=IDS,
            aliases=("l", "cs"),
            where=port_where,
            params=port_params,
            pending=pending,
        )
        new_total, copy_digest = _side_digest(
            conn,
            mappings_table=NEW_MAPPINGS,
            ids_table=NEW_IDS,
            aliases=("n", "cn"),
            where=copy_where,
            params=copy_params,
            pending=pending,
        )
        mappings += new_total
        chunks += 1
        if port_digest != copy_digest:
            row_by_row += 1
            found_missing, found_extra = _compare(
                conn,
                BEFORE_SWAP,
                keys,
                (port_where, port_params),
                (copy_where, copy_params),
                tolerate_pending=tolerate_pending,
            )
            missing.extend(found_missing)
            extra.extend(found_extra)
        conn.commit()
        if not count:
            break
        cursor, low = upper, high
        if progress is not None:
            progress(Progress("verifying", mappings, 0, 0, cursor))
    _refuse_differences(missing, extra, NEW_MAPPINGS, "the copy does not match the port's tables")
    return AdoptionVerification(mappings, chunks, row_by_row)


def _verify_ids(
    conn: Connection,
    keys: _Keys | None,
    ids: Sequence[str],
    *,
    tolerate_pending: bool = False,
    tb: _Tables = BEFORE_SWAP,
) -> None:
    """Row by row, both directions (one once live: `keys` None), for the given IDs only."""
    ordered = sorted(set(ids))
    missing: list[str] = []
    extra: list[str] = []
    for start in range(0, len(ordered), 1000):
        part = ordered[start : start + 1000]
        fitting = [value for value in part if _fits_new_id_column(value)] or [""]
        found_missing, found_extra = _compare(
            conn,
            tb,
            keys,
            (f"{{t}}.CanonicalId IN ({_placeholders(part)})", part),
            (f"{{t}}.CanonicalId IN ({_placeholders(fitting)})", fitting),
            tolerate_pending=tolerate_pending,
        )
        missing.extend(found_missing)
        extra.extend(found_extra)
    _refuse_differences(
        missing, extra, tb.new_mappings, "the port's writes since the verification do not match"
    )
