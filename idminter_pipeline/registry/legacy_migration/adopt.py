"""Adopting a registry the reference port created: the legacy migration's "adopt" source kind.

The port creates the RFC's tables as the RFC prints them (`DEFAULT CHARSET=latin1`, so
latin1_swedish_ci: case-insensitive, some accents merged, PAD SPACE), with yoyo history
`0001_create_identifiers_schema`. This project's tables are utf8mb4_bin / ascii_bin, exact. The
adoption rebuilds both tables while the port keeps minting, with the legacy migration's
machinery and guarantees:

1. this project's migrations are applied beside the port's (0001 leaves the port's two tables
   as they are; later ones add their own tables, and 0003 a nullable column to canonical_ids);
2. `identifiers_new` and `canonical_ids_new` are created with exactly what sql/ builds, and
   triggers on the port's two tables log the CanonicalId of every write into the legacy change
   log (`legacy_migration_changes`), from before the first row is read;
3. the copy walks the port's `canonical_ids` primary key in batches (keyset), each batch copying
   those IDs' canonical_ids rows and their mappings (through `idx_canonical`), committed with its
   cursor in `legacy_migration_state`, so an interrupted run resumes after the last batch;
4. catch-up passes re-copy logged IDs (`copy.apply_changes` with this kind's re-copy);
5. guard triggers keep the copies written by the migration alone; a chunked, set-based
   comparison proves the copies equal to the port's tables in both directions (mappings byte
   for byte after conversion, with their CreatedAt; canonical IDs with their Status);
6. the rest of the log is applied and re-checked under `LOCK TABLES`, the four tables are
   swapped with one `RENAME TABLE`, and variants the operator chose to register are written
   before the guard triggers come off (so no other writer can mint them first).

The port's tables are kept as `identifiers_port` and `canonical_ids_port` until `finalize`;
`rollback` swaps them back (copying back what this project's minter wrote since, if the port's
tables can hold it). The port's yoyo history row goes at the swap and comes back on rollback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from idminter_pipeline.core.errors import LegacyMigrationError
from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.legacy_migration.copy import (
    _create_trigger,
    _install_triggers,
    _refuse_unfit_ids,
    _trigger_names,
    apply_changes,
)
from idminter_pipeline.registry.legacy_migration.state import (
    _SOURCE_PARTS,
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    GUARD_TRIGGER_NAMES,
    LOG_TRIGGER_NAMES,
    STATE_TABLE,
    MigrationReport,
    Phase,
    Progress,
    ProgressCallback,
    _estimated_rows,
    _execute,
    _fits_new_id_column,
    _next_bound_in,
    _placeholders,
    _read_state,
    _scalar,
    clamp_batch_size,
    new_identifiers_ddl,
    show_create_table,
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
from idminter_pipeline.registry.schema import (
    DriftKind,
    migrations_dir,
    schema_drift,
    table_exists,
)

logger = logging.getLogger(__name__)

MAPPINGS = "identifiers"
IDS = "canonical_ids"
NEW_MAPPINGS = "identifiers_new"
NEW_IDS = "canonical_ids_new"
KEPT_MAPPINGS = "identifiers_port"
KEPT_IDS = "canonical_ids_port"
# Log triggers on the port's canonical_ids (its identifiers get the legacy kind's).
ID_LOG_TRIGGER_NAMES = ("idminter_port_ids_ai", "idminter_port_ids_au", "idminter_port_ids_ad")
ID_GUARD_TRIGGER_NAMES = ("idminter_new_ids_bi", "idminter_new_ids_bu", "idminter_new_ids_bd")
ADOPT_TRIGGER_NAMES = LOG_TRIGGER_NAMES + GUARD_TRIGGER_NAMES + ID_LOG_TRIGGER_NAMES
ADOPT_TRIGGER_NAMES += ID_GUARD_TRIGGER_NAMES
# Catch-up rounds stop once the log is this small (as in the legacy kind).
LOCKED_CATCH_UP_THRESHOLD = 2_000
FINAL_PASS_THRESHOLD = 100
MAX_CATCH_UP_ROUNDS = 50


@dataclass(frozen=True)
class _Tables:
    """The port's tables (source) and their copies (target), by their names at one moment."""

    mappings: str
    ids: str
    new_mappings: str
    new_ids: str


BEFORE_SWAP = _Tables(MAPPINGS, IDS, NEW_MAPPINGS, NEW_IDS)
AFTER_SWAP = _Tables(KEPT_MAPPINGS, KEPT_IDS, MAPPINGS, IDS)
_MAPPING_COLUMNS = "OntologyType, SourceSystem, SourceId, CanonicalId, CreatedAt"
_ID_COLUMNS = "CanonicalId, Status, CreatedAt, AssignedAt"


def _utf8(expression: str) -> str:
    return f"CONVERT({expression} USING utf8mb4) COLLATE utf8mb4_bin"


def _ascii(expression: str) -> str:
    return f"CONVERT({expression} USING ascii) COLLATE ascii_bin"


# -- the new tables: exactly what sql/ builds -----------------------------------------------------


def _migration_texts() -> list[str]:
    return [
        path.read_text()
        for path in sorted(migrations_dir().glob("*.sql"))
        if not path.name.endswith(".rollback.sql")
    ]


def new_ids_ddl() -> list[str]:
    """0001's `CREATE TABLE canonical_ids` as canonical_ids_new, then every later migration's
    `ALTER TABLE canonical_ids` on it: the swapped-in table is what sql/ builds."""
    texts = _migration_texts()
    match = re.search(
        r"CREATE TABLE IF NOT EXISTS canonical_ids \((?P<body>.*?)\)(?P<options> ENGINE=[^;]*);",
        texts[0],
        re.DOTALL,
    )
    if match is None:
        raise LegacyMigrationError("cannot find CREATE TABLE canonical_ids in 0001_create_registry")
    statements = [f"CREATE TABLE IF NOT EXISTS {NEW_IDS} ({match['body']}){match['options']}"]
    for text in texts[1:]:
        without_comments = re.sub(r"--[^\n]*", "", text)
        for alter in re.findall(r"ALTER TABLE canonical_ids\b[^;]*;", without_comments):
            statements.append(alter.replace("ALTER TABLE canonical_ids", f"ALTER TABLE {NEW_IDS}"))
    return statements


def new_mappings_ddl() -> str:
    # The foreign key names the new canonical_ids: RENAME TABLE carries it to `canonical_ids`.
    return new_identifiers_ddl(NEW_MAPPINGS).replace(
        "REFERENCES canonical_ids (", f"REFERENCES {NEW_IDS} ("
    )


# -- what the port's tables hold, in their own character set and collation -----------------------


def _source_collation(conn: Connection, table: str, column: str) -> str:
    rows = _execute(
        conn,
        "SELECT character_set_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s",
        (table, column),
    )
    charset, collation = rows[0] if rows else (None, None)
    if not (re.fullmatch(r"\w+", charset or "") and re.fullmatch(r"\w+", collation or "")):
        raise LegacyMigrationError(
            f"cannot read the character set and collation of {table}.{column}",
            offending=[charset, collation],
        )
    return f"{charset} COLLATE {collation}"


def is_port_registry(conn: Connection) -> bool:
    """The port's tables (or any RFC-shaped ones not this project's) are live: adopt them."""
    return schema_drift(conn).kind is DriftKind.PORT and table_exists(conn, MAPPINGS)


# -- triggers --------------------------------------------------------------------------------------


def _install_id_triggers(conn: Connection) -> None:
    existing = _trigger_names(conn, IDS)
    log = f"INSERT INTO {CHANGES_TABLE} (CanonicalId) VALUES"
    bodies = {
        ID_LOG_TRIGGER_NAMES[0]: f"AFTER INSERT ON {IDS} FOR EACH ROW {log} (NEW.CanonicalId)",
        ID_LOG_TRIGGER_NAMES[1]: (
            f"AFTER UPDATE ON {IDS} FOR EACH ROW {log} (OLD.CanonicalId), (NEW.CanonicalId)"
        ),
        ID_LOG_TRIGGER_NAMES[2]: f"AFTER DELETE ON {IDS} FOR EACH ROW {log} (OLD.CanonicalId)",
    }
    for name, body in bodies.items():
        if name not in existing:
            _create_trigger(conn, f"CREATE TRIGGER {name} {body}")


def _install_id_guard_triggers(conn: Connection) -> None:
    from idminter_pipeline.registry.legacy_migration.state import (  # noqa: PLC0415
        MIGRATION_SESSION_VARIABLE,
    )

    existing = _trigger_names(conn, NEW_IDS)
    for name, event, row in zip(
        ID_GUARD_TRIGGER_NAMES, ("INSERT", "UPDATE", "DELETE"), ("NEW", "OLD", "OLD"), strict=True
    ):
        if name in existing:
            continue
        _create_trigger(
            conn,
            f"CREATE TRIGGER {name} BEFORE {event} ON {NEW_IDS} FOR EACH ROW BEGIN "
            "DECLARE refused VARCHAR(128) DEFAULT NULL; "
            f"IF {MIGRATION_SESSION_VARIABLE} IS NULL THEN "
            "SET refused = LEFT(CONCAT('written only by db adopt until swapped; refused "
            f"{event.lower()} of canonical ID ', {row}.CanonicalId), 128); "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = refused; "
            "END IF; END",
        )


def _drop_triggers(conn: Connection) -> None:
    for name in ADOPT_TRIGGER_NAMES:
        _execute(conn, f"DROP TRIGGER IF EXISTS {name}")


# -- copy and re-copy ------------------------------------------------------------------------------


def _copy_ids(conn: Connection, where_ids: str, where_mappings: str, params: Sequence[Any]) -> None:
    """Upsert the port's canonical_ids rows and mappings matching the conditions (a batch)."""
    _execute(
        conn,
        f"INSERT INTO {NEW_IDS} ({_ID_COLUMNS}) SELECT {_ascii('cs.CanonicalId')}, cs.Status, "
        f"cs.CreatedAt, cs.AssignedAt FROM {IDS} cs WHERE {where_ids} "
        "ON DUPLICATE KEY UPDATE Status = VALUES(Status), AssignedAt = VALUES(AssignedAt)",
        params,
    )
    _execute(
        conn,
        f"INSERT INTO {NEW_MAPPINGS} ({_MAPPING_COLUMNS}) SELECT "
        + ", ".join(_utf8(f"s.{part}") for part in _SOURCE_PARTS)
        + f", {_ascii('s.CanonicalId')}, s.CreatedAt FROM {MAPPINGS} s WHERE {where_mappings} "
        "ON DUPLICATE KEY UPDATE CanonicalId = VALUES(CanonicalId), CreatedAt = VALUES(CreatedAt)",
        params,
    )


def _recopier(tb: _Tables) -> Any:
    def recopy(
        conn: Connection, source: str, target: str, ids: Sequence[str], fitting: Sequence[str]
    ) -> int:
        """The adopt kind's re-copy of logged IDs (see `copy.apply_changes`): their
        canonical_ids rows and mappings replaced by the port's current ones; returns the
        mappings' row delta."""
        del source, target  # this kind copies two tables, named by `tb`
        in_ids = f"s.CanonicalId IN ({_placeholders(ids)})"
        with conn.cursor() as cursor:
            removed = 0
            if fitting:
                cursor.execute(
                    f"DELETE t FROM {tb.new_mappings} t WHERE t.CanonicalId IN "
                    f"({_placeholders(fitting)})",
                    list(fitting),
                )
                removed = cursor.rowcount
                cursor.execute(
                    f"DELETE cn FROM {tb.new_ids} cn WHERE cn.CanonicalId IN "
                    f"({_placeholders(fitting)})",
                    list(fitting),
                )
            # A key these IDs hold now may still be in the copy under another ID (the port
            # moved it); that ID is logged too. Removed now, so the inserts below only insert
            # and the row count stays exact.
            same_key = " AND ".join(f"t.{part} = {_utf8(f's.{part}')}" for part in _SOURCE_PARTS)
            cursor.execute(
                f"DELETE t FROM {tb.mappings} s STRAIGHT_JOIN {tb.new_mappings} t ON {same_key} "
                f"WHERE {in_ids}",
                list(ids),
            )
            removed += cursor.rowcount
            cursor.execute(
                f"INSERT INTO {tb.new_ids} ({_ID_COLUMNS}) SELECT {_ascii('cs.CanonicalId')}, "
                f"cs.Status, cs.CreatedAt, cs.AssignedAt FROM {tb.ids} cs "
                f"WHERE cs.CanonicalId IN ({_placeholders(ids)})",
                list(ids),
            )
            cursor.execute(
                f"INSERT INTO {tb.new_mappings} ({_MAPPING_COLUMNS}) SELECT "
                + ", ".join(_utf8(f"s.{part}") for part in _SOURCE_PARTS)
                + f", {_ascii('s.CanonicalId')}, s.CreatedAt FROM {tb.mappings} s WHERE {in_ids}",
                list(ids),
            )
            return cursor.rowcount - removed

    return recopy


def _apply(
    conn: Connection, batch_size: int, max_entries: int | None = None, tb: _Tables = BEFORE_SWAP
) -> Any:
    return apply_changes(
        conn,
        source=tb.ids,
        target=tb.new_ids,
        batch_size=batch_size,
        max_entries=max_entries,
        recopy=_recopier(tb),
    )


def _start(conn: Connection) -> None:
    _refuse_unfit_ids(conn, IDS, "1 = 1", ())
    if table_exists(conn, NEW_MAPPINGS) and _scalar(conn, f"SELECT COUNT(*) FROM {NEW_MAPPINGS}"):
        raise LegacyMigrationError(
            f"{NEW_MAPPINGS} already holds rows but no adoption is recorded; run "
            "`idminter db adopt --rollback --yes` to clear it, then adopt again"
        )
    if not table_exists(conn, NEW_IDS):
        for statement in new_ids_ddl():
            _execute(conn, statement)
    _execute(conn, new_mappings_ddl())
    # Logging starts before the first row is read: every later write is re-copied.
    _install_triggers(conn, MAPPINGS)
    _install_id_triggers(conn)
    _execute(
        conn,
        f"INSERT INTO {STATE_TABLE} (Id, Phase, LegacyCreateTable) VALUES (1, 'copying', %s)",
        (show_create_table(conn, MAPPINGS),),
    )
    conn.commit()


def _copy(
    conn: Connection, batch_size: int, progress: ProgressCallback | None, report: MigrationReport
) -> None:
    state = _read_state(conn)
    assert state is not None
    cursor, copied, batches = state.cursor, state.rows_copied, state.batches
    estimated = _estimated_rows(conn, IDS)
    while True:
        upper, count = _next_bound_in(conn, IDS, cursor, batch_size)
        conn.commit()
        if count == 0:
            break
        where, params = _range_condition("{t}.CanonicalId", cursor, upper)
        _copy_ids(conn, where.format(t="cs"), where.format(t="s"), params)
        _execute(
            conn,
            f"UPDATE {STATE_TABLE} SET CopyCursor = %s, RowsCopied = RowsCopied + %s, "
            "BatchesCopied = BatchesCopied + 1, UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
            (upper, count),
        )
        conn.commit()
        cursor, copied, batches = upper, copied + count, batches + 1
        report.rows_copied, report.batches = copied, batches
        if progress is not None:
            progress(Progress(Phase.COPYING.value, copied, batches, estimated, cursor))
    _execute(
        conn,
        f"UPDATE {STATE_TABLE} SET Phase = 'copied', UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()


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
    """Prove the copies equal to the port's tables, in chunks of the port's canonical_ids key.

    Per chunk, counts and order-independent checksums of both tables on both sides (mappings
    with their converted parts, ID and CreatedAt; canonical IDs with their Status); a chunk that
    differs is compared row by row in both directions. As in the legacy kind, the copy's side
    of a chunk is the ascii_bin range up to the greatest boundary seen so far, so the two
    collations' orders never leave a row out. IDs with pending change-log entries are left out
    with `tolerate_pending`: they are re-copied and re-checked under the lock.
    """
    chunk = clamp_batch_size(batch_size * 5)
    keys = _keys(conn)
    cursor: str | None = None
    low: str | None = None
    mappings = chunks = row_by_row = 0
    missing: list[str] = []
    extra: list[str] = []
    while len(missing) + len(extra) < MAX_REPORTED:
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
