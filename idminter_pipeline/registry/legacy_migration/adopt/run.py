"""The adoption run: `adopt` takes a port-created registry through every phase, in order; then
`finalize_adoption` or `rollback_adoption`. The copy and the comparisons are in `adopt`.

Start (or resume from the state row), copy, catch up without a lock, install the guard
triggers, verify both tables in both directions, hold there (`swap=False`, for a shadow
period: `sync_adoption` keeps the copies in step) or catch up again re-checking each applied
ID, then the final pass under the lock, the rename, and the variants the operator chose to
register. An interrupted run picks up where its last committed step left it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idminter_pipeline.core import strict_json
from idminter_pipeline.core.errors import InvalidInputError, LegacyMigrationError
from idminter_pipeline.core.excerpts import excerpt
from idminter_pipeline.core.source_identifiers import SourceIdentifier
from idminter_pipeline.registry.connection import Connection, ConnectionFactory
from idminter_pipeline.registry.invariants import (
    drop_guards,
    install_mapping_guards,
    install_pool_guards,
)
from idminter_pipeline.registry.legacy_migration.adopt.copy import (
    ADOPT_TRIGGER_NAMES,
    AFTER_SWAP,
    ID_GUARD_TRIGGER_NAMES,
    IDS,
    KEPT_IDS,
    KEPT_MAPPINGS,
    MAPPINGS,
    NEW_IDS,
    NEW_MAPPINGS,
    apply_log,
    copy_port_tables,
    drop_triggers,
    install_id_guard_triggers,
    is_port_registry,
    read_mapping_checkpoint,
    start_copy,
)
from idminter_pipeline.registry.legacy_migration.adopt.verify import (
    ADOPTION,
    adoption_held,
    verify_ids,
)
from idminter_pipeline.registry.legacy_migration.conversion import (
    LegacyActionReport,
    SyncReport,
    admin_session,
    copy_back_since_swap,
    final_pass_and_rename,
    forget_conversion,
    lag,
    record_finalized,
    record_swapped,
    run_conversion,
    stop_or_swap_back,
    sync_held,
    verify_then_catch_up,
)
from idminter_pipeline.registry.legacy_migration.copy import (
    install_guard_triggers,
)
from idminter_pipeline.registry.legacy_migration.state import (
    CHANGES_TABLE,
    DEFAULT_BATCH_SIZE,
    EXAMPLES,
    GUARD_TRIGGER_NAMES,
    STATE_TABLE,
    MigrationReport,
    Phase,
    ProgressCallback,
    execute,
    read_alone,
    read_state,
    require_state_tables,
    state_available,
)
from idminter_pipeline.registry.schema import (
    PORT_MIGRATION,
    YOYO_MIGRATION_TABLE,
    apply_migrations,
    table_exists,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """A source identifier the port's collation resolved to another's row, to be registered
    to the canonical ID it resolved to (`idminter db adopt-variants` lists them)."""

    source: tuple[str, str, str]  # (OntologyType, SourceSystem, SourceId) as works use it
    resolved: tuple[str, str, str]  # the key the port's table holds
    canonical_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": "{}[{}/{}]".format(*self.source),
            "resolved_to": "{}[{}/{}]".format(*self.resolved),
            "resolved_key": list(self.resolved),
            "canonical_id": self.canonical_id,
        }


def parse_variant(line_number: int, line: str) -> Variant:
    """One line as `idminter db adopt-variants` prints it, or an error naming the line. The
    source must be one this project accepts (it is registered); the resolved key is the port's
    row as stored, whatever its form."""
    record = strict_json.loads(line, what=f"line {line_number}")
    try:
        source = SourceIdentifier.parse(record["source"])
        resolved = record["resolved_key"]
        canonical_id = record["canonical_id"]
        if not (
            isinstance(resolved, list)
            and len(resolved) == 3
            and all(isinstance(part, str) for part in resolved)
            and isinstance(canonical_id, str)
        ):
            raise TypeError
    except (KeyError, TypeError) as error:
        raise InvalidInputError(
            f'line {line_number}: expected {{"source": ..., "resolved_key": [type, '
            f'system, value], "canonical_id": ...}}: {excerpt(line)}'
        ) from error
    except InvalidInputError as error:
        raise InvalidInputError(f"line {line_number}: {error}") from error
    return Variant(source.as_key(), (resolved[0], resolved[1], resolved[2]), canonical_id)


def read_variants(path: Path) -> list[Variant]:
    """The variants file `idminter db adopt-variants` prints, or an error naming its line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise InvalidInputError(f"variants file {excerpt(str(path))}: {error.strerror}") from None
    variants = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError(
                f"{excerpt(str(path))} line {number}: not UTF-8: {excerpt(raw)}"
            ) from None
        variants.append(parse_variant(number, text))
    return variants


@dataclass
class AdoptionReport(MigrationReport):
    mappings_copied: int = 0
    variants_registered: int = 0
    variants_not_registered: list[str] = field(default_factory=list)


def adopt(
    connect: ConnectionFactory,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    swap: bool = True,
    variants: Sequence[Variant] = (),
) -> AdoptionReport:
    """Convert a port-created registry into this project's schema, online; resume an
    interrupted run. Does nothing (status "nothing to do") on a registry that is this
    project's. `variants` are registered at the swap, before anything else can write."""
    report = run_conversion(
        connect,
        batch_size,
        lambda conn, batch_size: _adopt(conn, batch_size, progress, swap, variants),
        # This project's history and bookkeeping tables beside the port's; its tables untouched.
        prepare=lambda: apply_migrations(connect, adopting=True),
    )
    logger.info("adoption: %s", report.status)
    return report


def _adopt(
    conn: Connection,
    batch_size: int,
    progress: ProgressCallback | None,
    swap: bool,
    variants: Sequence[Variant],
) -> AdoptionReport:
    require_state_tables(conn)
    state = read_state(conn)
    phase = state.phase if state else Phase.NONE
    report = AdoptionReport("", "port", phase.value)
    if phase is Phase.COPIED and table_exists(conn, KEPT_MAPPINGS):
        # Interrupted between the rename and recording it: finish the bookkeeping.
        finish_swap(conn, batch_size, report, variants)
        report.messages.append("completed a swap interrupted after the rename")
        return report
    if not is_port_registry(conn):
        conn.rollback()
        report.shape_before = "this project's"
        report.status = "nothing to do"
        report.messages.append(
            f"already adopted; {KEPT_MAPPINGS} and {KEPT_IDS} are kept until finalize"
            if phase is Phase.SWAPPED and table_exists(conn, KEPT_MAPPINGS)
            else "the registry's tables are this project's: nothing to adopt"
        )
        return report
    if state is not None and phase not in (Phase.COPYING, Phase.COPIED):
        # A finished migration's row (finalized, or swapped with its tables dropped by hand).
        execute(conn, f"DELETE FROM {STATE_TABLE}")
        conn.commit()
        state = None
    if state is None:
        start_copy(conn)
        report.messages.append(f"started: triggers installed, {NEW_MAPPINGS} and {NEW_IDS} created")
        state = read_state(conn)
        assert state is not None
    else:
        mappings = read_mapping_checkpoint(conn).copied
        report.messages.append(
            f"resuming after {state.rows_copied} canonical IDs and {mappings} mappings "
            f"({phase.value})"
        )
    report.rows_copied, report.batches = state.rows_copied, state.batches
    if state.phase is Phase.COPYING:
        copy_port_tables(conn, batch_size, progress, report)
    report.mappings_copied = read_mapping_checkpoint(conn).copied
    report.phase = Phase.COPIED.value
    install_guard_triggers(conn, NEW_MAPPINGS)
    install_id_guard_triggers(conn)
    execute(conn, f"ANALYZE TABLE {NEW_MAPPINGS}, {NEW_IDS}")

    rows = verify_then_catch_up(conn, ADOPTION, batch_size, progress, report, swap=swap)
    if rows is not None:
        final_pass_and_swap(conn, batch_size, report, rows, variants)
    return report


def final_pass_and_swap(
    conn: Connection,
    batch_size: int,
    report: AdoptionReport,
    copy_rows: int,
    variants: Sequence[Variant],
) -> None:
    """The last logged changes applied and re-checked under the lock, then one rename: the
    port's pair out, the copies in (the foreign key of the copy of identifiers follows
    canonical_ids_new to its new name)."""
    final_pass_and_rename(
        conn,
        ADOPTION,
        batch_size,
        report,
        copy_rows,
        lock_tables=(
            f"{MAPPINGS} WRITE, {MAPPINGS} AS s READ, {MAPPINGS} AS l READ, "
            f"{IDS} WRITE, {IDS} AS cs READ, {NEW_MAPPINGS} WRITE, {NEW_MAPPINGS} AS t WRITE, "
            f"{NEW_MAPPINGS} AS n READ, {NEW_IDS} WRITE, {NEW_IDS} AS cn WRITE, "
            f"{CHANGES_TABLE} WRITE, {STATE_TABLE} WRITE"
        ),
        rename_tables=(
            f"{MAPPINGS} TO {KEPT_MAPPINGS}, {IDS} TO {KEPT_IDS}, "
            f"{NEW_MAPPINGS} TO {MAPPINGS}, {NEW_IDS} TO {IDS}"
        ),
    )
    finish_swap(conn, batch_size, report, variants)


def _register_variants(
    conn: Connection, variants: Sequence[Variant], report: AdoptionReport
) -> None:
    """Each variant to the ID its resolved key holds now, if that is still the ID it resolved
    to; the guard triggers are still on, so no other writer can have minted it first."""
    for variant in variants:
        with conn.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {MAPPINGS} (OntologyType, SourceSystem, SourceId, CanonicalId, "
                "CreatedAt) SELECT %s, %s, %s, i.CanonicalId, CURRENT_TIMESTAMP(6) "
                f"FROM {MAPPINGS} i WHERE i.OntologyType = %s AND i.SourceSystem = %s "
                "AND i.SourceId = %s AND i.CanonicalId = %s AND NOT EXISTS (SELECT 1 FROM "
                f"{MAPPINGS} x WHERE x.OntologyType = %s AND x.SourceSystem = %s "
                "AND x.SourceId = %s)",
                (*variant.source, *variant.resolved, variant.canonical_id, *variant.source),
            )
            registered = cursor.rowcount == 1
        if registered:
            report.variants_registered += 1
        else:
            report.variants_not_registered.append(variant.as_dict()["source"])
    if report.variants_not_registered:
        report.messages.append(
            f"{len(report.variants_not_registered)} variant(s) not registered (already "
            "registered, or their resolved key no longer holds that ID): "
            + ", ".join(report.variants_not_registered[:EXAMPLES])
        )


def finish_swap(
    conn: Connection, batch_size: int, report: AdoptionReport, variants: Sequence[Variant]
) -> None:
    _register_variants(conn, variants, report)
    conn.commit()
    # A trigger moves with its table: the registry's invariant guards went with the port's tables
    # to their kept names. They go on the live tables before the copy's own guards come off, so
    # no moment is left in which a port minter still writing could delete or re-key a mapping.
    drop_guards(conn)
    install_mapping_guards(conn)
    install_pool_guards(conn)
    for name in (*GUARD_TRIGGER_NAMES, *ID_GUARD_TRIGGER_NAMES):
        execute(conn, f"DROP TRIGGER IF EXISTS {name}")
    late = apply_log(conn, batch_size, tb=AFTER_SWAP)
    if late.entries:
        report.changes_applied += late.entries
        verify_ids(conn, None, sorted(late.ids), tb=AFTER_SWAP)
        report.messages.append(f"{late.entries} port writes between unlock and rename applied")
    drop_triggers(conn)
    # The port's migration is adopted: its history row goes (rollback puts it back).
    execute(conn, f"DELETE FROM {YOYO_MIGRATION_TABLE} WHERE migration_id = %s", (PORT_MIGRATION,))
    record_swapped(conn, report)


# What `sync_adoption` did: the legacy kind's record.
AdoptionSync = SyncReport


def sync_adoption(
    connect: ConnectionFactory, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> AdoptionSync:
    """Apply the port's writes to copies held at the synced phase, re-checking each ID."""
    return sync_held(connect, ADOPTION, batch_size)


def adoption_status(connect: ConnectionFactory) -> dict[str, Any]:
    """Where an adoption stands (cheap reads: no scans)."""
    return read_alone(connect, _read_adoption_status)


def _read_adoption_status(conn: Connection) -> dict[str, Any]:
    state = read_state(conn) if state_available(conn) else None
    result: dict[str, Any] = {
        "port_tables_live": is_port_registry(conn),
        "phase": state.phase.value if state else Phase.NONE.value,
        "canonical_ids_copied": state.rows_copied if state else 0,
        "mappings_copied": read_mapping_checkpoint(conn).copied if state else 0,
        "port_tables_kept": table_exists(conn, KEPT_MAPPINGS),
        "held_synced": adoption_held(conn),
    }
    if state_available(conn):
        result["lag"] = lag(conn).as_dict()
    return result


def finalize_adoption(connect: ConnectionFactory) -> LegacyActionReport:
    """Drop the kept port tables after a swap. There is no rollback after this."""
    with admin_session(connect) as (conn, state):
        if (
            state is None
            or state.phase is not Phase.SWAPPED
            or not table_exists(conn, KEPT_MAPPINGS)
        ):
            raise LegacyMigrationError(
                "nothing to finalize: no adoption has swapped (finalize follows a swap)"
            )
        record_finalized(conn, triggers=ADOPT_TRIGGER_NAMES, tables=(KEPT_MAPPINGS, KEPT_IDS))
        return LegacyActionReport("finalized", [f"dropped {KEPT_MAPPINGS} and {KEPT_IDS}"])


def rollback_adoption(connect: ConnectionFactory) -> LegacyActionReport:
    """Undo an adoption that is not finalized: the port's tables are back as they were.

    After a swap, what this project's minter wrote since (mappings created and canonical IDs
    created or assigned after the swap) is copied back when the port's tables can hold it;
    if any cannot be (a key the port's collation merges with another), nothing changes and
    the error names them.
    """
    with admin_session(connect, wait_for_locks=True) as (conn, state):
        if state is None or state.phase in (Phase.FINALIZED, Phase.NONE):
            reason = "finalized; the port's tables are gone" if state else "not started"
            raise LegacyMigrationError(f"nothing to roll back: the adoption is {reason}")
        report = stop_or_swap_back(
            conn,
            state,
            swap_back=lambda: _swap_back(conn, state.swapped_at),
            restored="the port's tables",
            triggers=ADOPT_TRIGGER_NAMES,
        )
        execute(conn, f"DROP TABLE IF EXISTS {NEW_MAPPINGS}")
        execute(conn, f"DROP TABLE IF EXISTS {NEW_IDS}")
        forget_conversion(conn)
        report.messages.append(f"dropped {NEW_MAPPINGS} and {NEW_IDS}")
        return report


def _swap_back(conn: Connection, swapped_at: Any) -> int:
    if not (table_exists(conn, KEPT_MAPPINGS) and table_exists(conn, KEPT_IDS)):
        raise LegacyMigrationError(f"{KEPT_MAPPINGS} is missing; cannot restore the port's tables")

    def copy_back(first: Sequence[Sequence[Any]]) -> int:
        del first  # canonical IDs created or assigned since are copied back even without one
        execute(
            conn,
            f"INSERT INTO {KEPT_IDS} (CanonicalId, Status) SELECT c.CanonicalId, c.Status "
            f"FROM {IDS} c WHERE c.CreatedAt > %s OR c.AssignedAt > %s "
            "ON DUPLICATE KEY UPDATE Status = VALUES(Status)",
            (swapped_at, swapped_at),
        )
        with conn.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {KEPT_MAPPINGS} (OntologyType, SourceSystem, SourceId, "
                "CanonicalId, CreatedAt) SELECT n.OntologyType, n.SourceSystem, n.SourceId, "
                f"n.CanonicalId, n.CreatedAt FROM {MAPPINGS} n WHERE n.CreatedAt > %s",
                (swapped_at,),
            )
            return cursor.rowcount

    copied = copy_back_since_swap(
        conn,
        lock_tables=f"{MAPPINGS} WRITE, {MAPPINGS} AS n READ, {IDS} WRITE, {IDS} AS c READ, "
        f"{KEPT_MAPPINGS} WRITE, {KEPT_IDS} WRITE",
        swapped_at=swapped_at,
        copy_back=copy_back,
        holder="the port's tables",
    )
    execute(
        conn,
        f"RENAME TABLE {MAPPINGS} TO {NEW_MAPPINGS}, {IDS} TO {NEW_IDS}, "
        f"{KEPT_MAPPINGS} TO {MAPPINGS}, {KEPT_IDS} TO {IDS}",
    )
    # The port's history row back, as yoyo writes it (its hash is the SHA-256 of the id).
    execute(
        conn,
        f"INSERT INTO {YOYO_MIGRATION_TABLE} (migration_hash, migration_id, applied_at_utc) "
        "SELECT %s, %s, UTC_TIMESTAMP() FROM DUAL WHERE NOT EXISTS "
        f"(SELECT 1 FROM {YOYO_MIGRATION_TABLE} WHERE migration_id = %s)",
        (hashlib.sha256(PORT_MIGRATION.encode()).hexdigest(), PORT_MIGRATION, PORT_MIGRATION),
    )
    conn.commit()
    return copied


__all__ = [
    "ADOPT_TRIGGER_NAMES",
    "AdoptionReport",
    "AdoptionSync",
    "Variant",
    "adopt",
    "adoption_status",
    "finalize_adoption",
    "parse_variant",
    "read_variants",
    "rollback_adoption",
    "sync_adoption",
]
