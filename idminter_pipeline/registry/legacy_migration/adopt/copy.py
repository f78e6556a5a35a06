"""The adoption's tables, triggers, copy and re-copy (see the package's docstring).

The copies are created with exactly what sql/ builds; log triggers on the port's two tables
record the CanonicalId of every write from before the first row is read; the copy walks the
port's canonical_ids key in batches committed with their cursor; `apply_log` re-copies the IDs the
change log names (`copy.apply_changes` with this kind's re-copy), before or after the swap.
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
    CopyBatch,
    Keyset,
    apply_changes,
    copy_in_batches,
    install_guard_triggers,
    install_log_triggers,
    refuse_unfit_ids,
    walk_in_batches,
)
from idminter_pipeline.registry.legacy_migration.state import (
    GUARD_TRIGGER_NAMES,
    LIVE_TABLE,
    LOG_TRIGGER_NAMES,
    NEW_TABLE,
    SOURCE_PARTS,
    STATE_TABLE,
    Key,
    MigrationReport,
    Progress,
    ProgressCallback,
    column_collation,
    estimated_rows,
    execute,
    key_range_condition,
    new_identifiers_ddl,
    placeholders,
    range_condition,
    read_state,
    scalar,
    show_create_table,
    table_columns,
)
from idminter_pipeline.registry.legacy_migration.verify import as_legacy_key
from idminter_pipeline.registry.schema import (
    DriftKind,
    migrations_dir,
    schema_drift,
    table_exists,
)

logger = logging.getLogger(__name__)

# The live mapping table and its copy are the legacy kind's; this kind copies canonical_ids too.
MAPPINGS, NEW_MAPPINGS = LIVE_TABLE, NEW_TABLE
IDS = "canonical_ids"
NEW_IDS = "canonical_ids_new"
KEPT_MAPPINGS = "identifiers_port"
KEPT_IDS = "canonical_ids_port"
# Log triggers on the port's canonical_ids (its identifiers get the legacy kind's).
ID_LOG_TRIGGER_NAMES = ("idminter_port_ids_ai", "idminter_port_ids_au", "idminter_port_ids_ad")
ID_GUARD_TRIGGER_NAMES = ("idminter_new_ids_bi", "idminter_new_ids_bu", "idminter_new_ids_bd")
ADOPT_TRIGGER_NAMES = LOG_TRIGGER_NAMES + GUARD_TRIGGER_NAMES + ID_LOG_TRIGGER_NAMES
ADOPT_TRIGGER_NAMES += ID_GUARD_TRIGGER_NAMES


@dataclass(frozen=True)
class Tables:
    """The port's tables (source) and their copies (target), by their names at one moment."""

    mappings: str
    ids: str
    new_mappings: str
    new_ids: str


BEFORE_SWAP = Tables(MAPPINGS, IDS, NEW_MAPPINGS, NEW_IDS)
AFTER_SWAP = Tables(KEPT_MAPPINGS, KEPT_IDS, MAPPINGS, IDS)
# The port's mappings are walked along their primary key; the state row keeps the last one copied.
_MAPPING_KEY = SOURCE_PARTS
_MAPPING_CURSOR_COLUMNS = tuple(f"MappingCursor{part}" for part in SOURCE_PARTS)
# The progress phase of the mappings' walk (the canonical IDs' is `copying`).
COPYING_MAPPINGS = "copying mappings"
_MAPPING_COLUMNS = "OntologyType, SourceSystem, SourceId, CanonicalId, CreatedAt"
_ID_COLUMNS = "CanonicalId, Status, CreatedAt, AssignedAt"


def as_utf8_bin(expression: str) -> str:
    return f"CONVERT({expression} USING utf8mb4) COLLATE utf8mb4_bin"


def as_ascii_bin(expression: str) -> str:
    return f"CONVERT({expression} USING ascii) COLLATE ascii_bin"


# What a batch selects from the port's tables (aliases `cs` and `s`), in the copies' encodings.
_ID_VALUES = f"{as_ascii_bin('cs.CanonicalId')}, cs.Status, cs.CreatedAt, cs.AssignedAt"
_MAPPING_VALUES = (
    ", ".join(as_utf8_bin(f"s.{part}") for part in SOURCE_PARTS)
    + f", {as_ascii_bin('s.CanonicalId')}, s.CreatedAt"
)


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


_SECONDARY_KEY = re.compile(r"(INDEX|KEY|CONSTRAINT)\b", re.IGNORECASE)


def bulk_mappings_ddl() -> tuple[str, str]:
    """`new_mappings_ddl` split in two: the CREATE TABLE without its secondary indexes and
    foreign keys, which the copy fills, and the ALTER TABLE that adds them once it is full.

    The mappings arrive in primary-key order, their canonical IDs in random order: an index
    built in one sorted pass after the copy costs a fraction of one kept up row by row. The
    table then has exactly what sql/ builds (one ALTER adds the index and the foreign key, so
    the foreign key uses that index)."""
    ddl = new_mappings_ddl()
    match = re.fullmatch(r"(?P<head>[^(]*\()(?P<body>.*)(?P<tail>\)[^)]*)", ddl, re.DOTALL)
    if match is None:
        raise LegacyMigrationError(f"cannot read the CREATE TABLE of {NEW_MAPPINGS}")
    clauses, depth, start = [], 0, 0
    body = match["body"]
    for position, character in enumerate(body):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == "," and depth == 0:
            clauses.append(body[start:position].strip())
            start = position + 1
    clauses.append(body[start:].strip())
    kept = [clause for clause in clauses if not _SECONDARY_KEY.match(clause)]
    # Indexes before foreign keys: each foreign key then uses the index sql/ names for it.
    deferred = sorted(
        (clause for clause in clauses if _SECONDARY_KEY.match(clause)),
        key=lambda clause: clause.upper().startswith("CONSTRAINT"),
    )
    create = f"{match['head']}\n  " + ",\n  ".join(kept) + f"\n{match['tail']}"
    alter = f"ALTER TABLE {NEW_MAPPINGS} " + ", ".join(f"ADD {clause}" for clause in deferred)
    return create, alter


def add_mapping_secondary_keys(conn: Connection) -> None:
    """The copy of the mappings' secondary index and foreign key, unless it has them (a table
    created before they were deferred, or an interrupted run that added them)."""
    has_secondary = scalar(
        conn,
        "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() "
        "AND table_name = %s AND index_name <> 'PRIMARY'",
        (NEW_MAPPINGS,),
    )
    if not has_secondary:
        # Built in place; foreign key checks are off in the copy session, so the foreign key
        # is added without a scan (the verification proves every ID is in the copy of
        # canonical_ids).
        execute(conn, bulk_mappings_ddl()[1])


# -- what the port's tables hold, in their own character set and collation -----------------------


def is_port_registry(conn: Connection) -> bool:
    """The port's tables (or any RFC-shaped ones not this project's) are live: adopt them."""
    return schema_drift(conn).kind is DriftKind.PORT and table_exists(conn, MAPPINGS)


# -- triggers --------------------------------------------------------------------------------------


def install_id_guard_triggers(conn: Connection) -> None:
    """The legacy kind's guard on the copy of canonical_ids too."""
    install_guard_triggers(
        conn,
        NEW_IDS,
        ID_GUARD_TRIGGER_NAMES,
        lambda event, row: (
            f"'written only by db adopt until swapped; refused {event} of canonical ID ', "
            f"{row}.CanonicalId"
        ),
    )


def drop_triggers(conn: Connection) -> None:
    for name in ADOPT_TRIGGER_NAMES:
        execute(conn, f"DROP TRIGGER IF EXISTS {name}")


# -- copy and re-copy ------------------------------------------------------------------------------


def _copy_id_rows(conn: Connection, lower: str | None, upper: str) -> None:
    """Upsert the port's canonical_ids rows in (lower, upper] (a batch)."""
    where, params = range_condition("cs.CanonicalId", lower, upper)
    execute(
        conn,
        f"INSERT INTO {NEW_IDS} ({_ID_COLUMNS}) SELECT {_ID_VALUES} FROM {IDS} cs "
        f"WHERE {where} "
        "ON DUPLICATE KEY UPDATE Status = VALUES(Status), AssignedAt = VALUES(AssignedAt)",
        params,
    )


def _mapping_copier(binds: Sequence[str]) -> CopyBatch:
    def copy_mappings(conn: Connection, lower: Key | None, upper: Key) -> None:
        """Upsert the port's mappings whose primary key is in (lower, upper] (a batch): read
        along the port's primary key, inserted in (nearly) the copy's primary-key order."""
        where, params = key_range_condition(_MAPPING_KEY, lower, upper, binds)
        execute(
            conn,
            f"INSERT INTO {NEW_MAPPINGS} ({_MAPPING_COLUMNS}) SELECT {_MAPPING_VALUES} "
            f"FROM {MAPPINGS} s WHERE {where} "
            "ON DUPLICATE KEY UPDATE CanonicalId = VALUES(CanonicalId), "
            "CreatedAt = VALUES(CreatedAt)",
            params,
        )

    return copy_mappings


def _recopier(tb: Tables) -> Any:
    def recopy(
        conn: Connection, source: str, target: str, ids: Sequence[str], fitting: Sequence[str]
    ) -> int:
        """The adopt kind's re-copy of logged IDs (see `copy.apply_changes`): their
        canonical_ids rows and mappings replaced by the port's current ones; returns the
        mappings' row delta."""
        del source, target  # this kind copies two tables, named by `tb`
        in_ids = f"s.CanonicalId IN ({placeholders(ids)})"
        with conn.cursor() as cursor:
            removed = 0
            if fitting:
                cursor.execute(
                    f"DELETE t FROM {tb.new_mappings} t WHERE t.CanonicalId IN "
                    f"({placeholders(fitting)})",
                    list(fitting),
                )
                removed = cursor.rowcount
                cursor.execute(
                    f"DELETE cn FROM {tb.new_ids} cn WHERE cn.CanonicalId IN "
                    f"({placeholders(fitting)})",
                    list(fitting),
                )
            # A key these IDs hold now may still be in the copy under another ID (the port
            # moved it); that ID is logged too. Removed now, so the inserts below only insert
            # and the row count stays exact.
            same_key = " AND ".join(
                f"t.{part} = {as_utf8_bin(f's.{part}')}" for part in SOURCE_PARTS
            )
            cursor.execute(
                f"DELETE t FROM {tb.mappings} s STRAIGHT_JOIN {tb.new_mappings} t ON {same_key} "
                f"WHERE {in_ids}",
                list(ids),
            )
            removed += cursor.rowcount
            cursor.execute(
                f"INSERT INTO {tb.new_ids} ({_ID_COLUMNS}) SELECT {_ID_VALUES} FROM {tb.ids} cs "
                f"WHERE cs.CanonicalId IN ({placeholders(ids)})",
                list(ids),
            )
            cursor.execute(
                f"INSERT INTO {tb.new_mappings} ({_MAPPING_COLUMNS}) SELECT {_MAPPING_VALUES} "
                f"FROM {tb.mappings} s WHERE {in_ids}",
                list(ids),
            )
            return cursor.rowcount - removed

    return recopy


def apply_log(
    conn: Connection, batch_size: int, max_entries: int | None = None, tb: Tables = BEFORE_SWAP
) -> Any:
    return apply_changes(
        conn,
        source=tb.ids,
        target=tb.new_ids,
        batch_size=batch_size,
        max_entries=max_entries,
        recopy=_recopier(tb),
    )


def start_copy(conn: Connection) -> None:
    refuse_unfit_ids(conn, IDS, "1 = 1", ())
    if table_exists(conn, NEW_MAPPINGS) and scalar(conn, f"SELECT COUNT(*) FROM {NEW_MAPPINGS}"):
        raise LegacyMigrationError(
            f"{NEW_MAPPINGS} already holds rows but no adoption is recorded; run "
            "`idminter db adopt --rollback --yes` to clear it, then adopt again"
        )
    if not table_exists(conn, NEW_IDS):
        for statement in new_ids_ddl():
            execute(conn, statement)
    execute(conn, bulk_mappings_ddl()[0])
    # Logging starts before the first row is read: every later write is re-copied.
    install_log_triggers(conn, MAPPINGS)
    install_log_triggers(conn, IDS, ID_LOG_TRIGGER_NAMES)
    execute(
        conn,
        f"INSERT INTO {STATE_TABLE} (Id, Phase, LegacyCreateTable) VALUES (1, 'copying', %s)",
        (show_create_table(conn, MAPPINGS),),
    )
    conn.commit()


@dataclass(frozen=True)
class MappingCheckpoint:
    """Where the copy of the port's mappings stands in the state row."""

    started: bool  # the canonical IDs are copied; the mappings' walk has begun
    cursor: Key | None  # the last mapping key copied, as the port's table holds it
    copied: int


def read_mapping_checkpoint(conn: Connection) -> MappingCheckpoint:
    """The state row's checkpoint of the mappings' walk; none while the migration that adds it
    is pending (`idminter db status` reads it on registries with migrations pending)."""
    if "CopyTable" not in table_columns(conn, STATE_TABLE):
        return MappingCheckpoint(False, None, 0)
    rows = execute(
        conn,
        f"SELECT CopyTable, {', '.join(_MAPPING_CURSOR_COLUMNS)}, MappingsCopied "
        f"FROM {STATE_TABLE} WHERE Id = 1",
    )
    if not rows:
        return MappingCheckpoint(False, None, 0)
    table, *cursor, copied = rows[0]
    started = table == MAPPINGS
    key = tuple(cursor) if started and cursor[0] is not None else None
    return MappingCheckpoint(started, key, int(copied))


def copy_port_tables(
    conn: Connection, batch_size: int, progress: ProgressCallback | None, report: MigrationReport
) -> None:
    """The port's canonical_ids, then its mappings, into their copies: each table walked along
    its own primary key in keyset batches, each batch committed with that walk's checkpoint."""
    checkpoint = read_mapping_checkpoint(conn)
    if not checkpoint.started:
        state = read_state(conn)
        assert state is not None
        copy_in_batches(
            conn,
            state,
            table=IDS,
            copy_batch=_copy_id_rows,
            batch_size=batch_size,
            progress=progress,
            report=report,
            finished=f"CopyTable = '{MAPPINGS}'",
        )
        checkpoint = read_mapping_checkpoint(conn)
    # The cursor is compared in the port's collations, so the walk uses its primary key.
    binds = tuple(
        as_legacy_key("%s", column_collation(conn, MAPPINGS, part)) for part in _MAPPING_KEY
    )
    keyset = Keyset(
        MAPPINGS,
        key=_MAPPING_KEY,
        cursor_columns=_MAPPING_CURSOR_COLUMNS,
        counter="MappingsCopied",
        binds=binds,
    )
    estimated = estimated_rows(conn, MAPPINGS)
    copied, batches = checkpoint.copied, report.batches
    for upper, count in walk_in_batches(
        conn, keyset, checkpoint.cursor, _mapping_copier(binds), batch_size
    ):
        copied, batches = copied + count, batches + 1
        report.batches = batches
        if progress is not None:
            label = "{}[{}/{}]".format(*upper)
            progress(Progress(COPYING_MAPPINGS, copied, batches, estimated, label))
    add_mapping_secondary_keys(conn)
    execute(
        conn,
        f"UPDATE {STATE_TABLE} SET Phase = 'copied', UpdatedAt = CURRENT_TIMESTAMP(6) WHERE Id = 1",
    )
    conn.commit()
