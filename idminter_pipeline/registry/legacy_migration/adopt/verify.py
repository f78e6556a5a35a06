"""The adoption's verification: the copies proved equal to the port's tables, both ways.

`verify_adoption` compares both tables without a lock: first counts and order-independent
checksums of each whole table on both sides, in one read view (sequential scans); only if they
differ, chunk by chunk of the port's canonical_ids key, row by row in both directions where a
chunk differs. `verify_ids` compares just the IDs it is given, row by row: the catch-up
rounds after the verification and the final pass under the lock run it on the IDs the change
log named. Differences raise `LegacyVerificationError`, which names them; nothing is swapped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.legacy_migration.adopt.copy import (
    BEFORE_SWAP,
    ID_GUARD_TRIGGER_NAMES,
    IDS,
    MAPPINGS,
    NEW_IDS,
    NEW_MAPPINGS,
    Tables,
    apply_log,
    as_ascii_bin,
    as_utf8_bin,
)
from idminter_pipeline.registry.legacy_migration.conversion import Conversion, Recheck, copy_held
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    SOURCE_PARTS,
    Progress,
    ProgressCallback,
    column_collation,
    execute,
    fits_new_id_column,
    placeholders,
)
from idminter_pipeline.registry.legacy_migration.verify import (
    MAX_REPORTED,
    as_legacy_key,
    comparison_chunks,
    id_parts,
    ids_with_pending_changes,
    kept_digest,
    range_condition,
    refuse_differences,
)
from idminter_pipeline.registry.schema import table_exists

# -- verification: both directions, both tables ----------------------------------------------------


def _parts_differ(left: str, right: str) -> str:
    """SQL true when a mapping's parts, ID or CreatedAt differ byte for byte (`left` the port's
    row, `right` the copy's)."""
    return (
        f"CAST({right}.CanonicalId AS BINARY) <> CAST({left}.CanonicalId AS BINARY) "
        + "".join(
            f"OR CAST({right}.{part} AS BINARY) <> CAST({as_utf8_bin(f'{left}.{part}')} AS BINARY) "
            for part in SOURCE_PARTS
        )
        + f"OR NOT (CAST({right}.CreatedAt AS DATETIME(6)) <=> "
        f"CAST({left}.CreatedAt AS DATETIME(6)))"
    )


def _missing_sql(tb: Tables, where_mappings: str, where_ids: str) -> tuple[str, str]:
    """The port's rows with no identical copy: mappings (by key), canonical IDs (by ID)."""
    same_key = " AND ".join(f"n.{part} = {as_utf8_bin(f'l.{part}')}" for part in SOURCE_PARTS)
    mappings = (
        f"SELECT l.CanonicalId FROM {tb.mappings} l LEFT JOIN {tb.new_mappings} n ON {same_key} "
        f"WHERE ({where_mappings}) AND (n.CanonicalId IS NULL OR {_parts_differ('l', 'n')})"
    )
    ids = (
        f"SELECT cs.CanonicalId FROM {tb.ids} cs LEFT JOIN {tb.new_ids} cn "
        f"ON cn.CanonicalId = {as_ascii_bin('cs.CanonicalId')} WHERE ({where_ids}) AND "
        "(cn.CanonicalId IS NULL OR CAST(cn.CanonicalId AS BINARY) <> CAST(cs.CanonicalId AS "
        "BINARY) OR CAST(cn.Status AS BINARY) <> CAST(cs.Status AS BINARY))"
    )
    return mappings, ids


def _extra_sql(
    tb: Tables, where_mappings: str, where_ids: str, key: str, id_key: str
) -> tuple[str, str]:
    """The copy's rows that are no port row: each looked up by the port's own key (in its
    collation, `key` / `id_key`), then compared byte for byte."""
    same_key = " AND ".join(
        f"l.{part} = {as_legacy_key(f'n.{part}', key)}" for part in SOURCE_PARTS
    )
    mappings = (
        "SELECT n.CanonicalId, n.OntologyType, n.SourceSystem, n.SourceId "
        f"FROM {tb.new_mappings} n LEFT JOIN {tb.mappings} l ON {same_key} "
        f"WHERE ({where_mappings}) AND (l.CanonicalId IS NULL OR {_parts_differ('l', 'n')})"
    )
    ids = (
        f"SELECT cn.CanonicalId FROM {tb.new_ids} cn LEFT JOIN {tb.ids} cs "
        f"ON cs.CanonicalId = {as_legacy_key('cn.CanonicalId', id_key)} "
        f"WHERE ({where_ids}) AND (cs.CanonicalId IS NULL OR CAST(cn.CanonicalId AS BINARY) <> "
        "CAST(cs.CanonicalId AS BINARY) OR CAST(cn.Status AS BINARY) <> CAST(cs.Status AS BINARY))"
    )
    return mappings, ids


@dataclass(frozen=True)
class Keys:
    mapping: str  # the port's identifiers key parts, `charset COLLATE collation`
    canonical: str  # the port's CanonicalId columns


def read_keys(conn: Connection) -> Keys:
    return Keys(
        column_collation(conn, MAPPINGS, "SourceId"),
        column_collation(conn, IDS, "CanonicalId"),
    )


def _describe(row: Sequence[str]) -> str:
    canonical, ontology, system, source = row
    return f"{ontology}[{system}/{source}] -> {canonical}"


def _compare(
    conn: Connection,
    tb: Tables,
    keys: Keys | None,
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
        for (value,) in execute(conn, f"{sql} LIMIT {MAX_REPORTED}", params)
    ]
    extra_rows: list[Any] = []
    extra_ids_rows: list[Any] = []
    if keys is not None:  # None once live: the copy may rightly gain rows of its own
        where, params = copy_where
        extra_mappings, extra_ids = _extra_sql(
            tb, where.format(t="n"), where.format(t="cn"), keys.mapping, keys.canonical
        )
        extra_rows = execute(conn, f"{extra_mappings} LIMIT {MAX_REPORTED}", params)
        extra_ids_rows = execute(conn, f"{extra_ids} LIMIT {MAX_REPORTED}", params)
    extra = [_describe(row) for row in extra_rows] + [
        f"canonical ID {value}" for (value,) in extra_ids_rows
    ]
    if tolerate_pending and (missing or extra_rows or extra_ids_rows):
        pending = ids_with_pending_changes(
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
        for (value,) in execute(
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
    total, kept, checksum = kept_digest(
        conn,
        f"{mappings_table} {alias}",
        where.format(t=alias),
        params,
        columns=(
            f"{alias}.CanonicalId",
            *(as_utf8_bin(f"{alias}.{part}") for part in SOURCE_PARTS),
            f"CAST({alias}.CreatedAt AS DATETIME(6))",
        ),
        pending=pending,
        count=True,
    )
    id_kept, id_sum = kept_digest(
        conn,
        f"{ids_table} {id_alias}",
        where.format(t=id_alias),
        params,
        columns=(f"{id_alias}.CanonicalId", f"{id_alias}.Status"),
        pending=pending,
    )
    return total, (kept, checksum, id_kept, id_sum)


def _start_read_view(conn: Connection) -> None:
    """A new transaction reading one snapshot: the adoption's session is READ COMMITTED (its
    copy reads the port's rows without locking them), where each statement would see other
    writes, and digests taken a statement apart would differ."""
    conn.commit()
    execute(conn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    execute(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")


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
        logged_ids = execute(
            conn, f"SELECT DISTINCT CanonicalId FROM {CHANGES_TABLE} LIMIT {MAX_EXCLUDED + 1}"
        )
        if len(logged_ids) > MAX_EXCLUDED:
            return None
        pending = [value for (value,) in logged_ids] if tolerate_pending else []
        fitting = [value for value in pending if fits_new_id_column(value)]
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
                    where=f"{{t}}.CanonicalId IN ({placeholders(logged)})",
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

    @property
    def new_rows(self) -> int:
        return self.mappings


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
    keys = read_keys(conn)
    mappings = chunks = row_by_row = 0
    missing: list[str] = []
    extra: list[str] = []
    for port_bounds, copy_bounds in comparison_chunks(
        conn, IDS, batch_size, until=lambda: len(missing) + len(extra) >= MAX_REPORTED
    ):
        # Both sides' checksums in one read view: the session reads committed data, and the
        # port keeps writing between two statements.
        _start_read_view(conn)
        pending = _pending_ids(conn) if tolerate_pending else []
        port_where, port_params = (
            range_condition("{t}.CanonicalId", *port_bounds) if port_bounds else ("1 = 0", [])
        )
        copy_where, copy_params = range_condition("{t}.CanonicalId", *copy_bounds)
        (_, port_digest), (new_total, copy_digest) = (
            _side_digest(
                conn,
                mappings_table=mappings_table,
                ids_table=ids_table,
                aliases=aliases,
                where=where,
                params=params,
                pending=pending,
            )
            for mappings_table, ids_table, aliases, where, params in (
                (MAPPINGS, IDS, ("l", "cs"), port_where, port_params),
                (NEW_MAPPINGS, NEW_IDS, ("n", "cn"), copy_where, copy_params),
            )
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
        if port_bounds is not None and progress is not None:
            progress(Progress("verifying", mappings, 0, 0, port_bounds[1]))
    refuse_differences(missing, extra, NEW_MAPPINGS, "the copy does not match the port's tables")
    return AdoptionVerification(mappings, chunks, row_by_row)


def verify_ids(
    conn: Connection,
    keys: Keys | None,
    ids: Sequence[str],
    *,
    tolerate_pending: bool = False,
    tb: Tables = BEFORE_SWAP,
) -> None:
    """Row by row, both directions (one once live: `keys` None), for the given IDs only."""
    missing: list[str] = []
    extra: list[str] = []
    for part, fitting_ids in id_parts(ids):
        fitting = fitting_ids or [""]
        found_missing, found_extra = _compare(
            conn,
            tb,
            keys,
            (f"{{t}}.CanonicalId IN ({placeholders(part)})", part),
            (f"{{t}}.CanonicalId IN ({placeholders(fitting)})", fitting),
            tolerate_pending=tolerate_pending,
        )
        missing.extend(found_missing)
        extra.extend(found_extra)
    refuse_differences(
        missing, extra, tb.new_mappings, "the port's writes since the verification do not match"
    )


def _adoption_recheck(conn: Connection) -> Recheck:
    keys = read_keys(conn)

    def recheck(ids: Collection[str], tolerate_pending: bool) -> None:
        verify_ids(conn, keys, sorted(ids), tolerate_pending=tolerate_pending)

    return recheck


def adoption_held(conn: Connection) -> bool:
    """The port's tables' verified copies wait for the swap (triggers live, guards on)."""
    return copy_held(conn, ID_GUARD_TRIGGER_NAMES, NEW_IDS) and table_exists(conn, NEW_MAPPINGS)


# The port's two tables into their copies: `apply_log` re-copies, `verify_ids` compares.
ADOPTION = Conversion(
    apply=apply_log,
    rechecker=_adoption_recheck,
    held=adoption_held,
    verify=verify_adoption,
    counted="mappings",
    not_held="no adoption holds at its synced phase: run `idminter db adopt --hold-synced` first",
)
