"""The registry's promise kept by the database itself: a published mapping never changes, and an ID
a mapping uses or ever used never goes back to the pool (docs/design/registry-invariants.md).

Four triggers, whichever account writes and however (the runtime account, a legacy minter still
running after the swap, a person at a SQL prompt):

- on `identifiers`, BEFORE UPDATE refuses a change of a mapping's canonical ID or source key and
  BEFORE DELETE refuses deleting a mapping (rules `mapping-immutable`, `mapping-undeletable`);
- on `canonical_ids`, BEFORE UPDATE refuses setting back to `free` (or renaming) and BEFORE
  DELETE refuses deleting an ID that a mapping uses or ever used (rule `published-id-kept`):
  a mapping holds it, it is in `retired_canonical_ids` or `mapping_changes`, or it is `assigned`
  with `AssignedAt` set (the minter stamps every ID it maps). An assigned ID never published
  still goes back to the pool through the reconciliation's repair.

Each refusal is SQLSTATE 45000 with a message naming its rule. The one way through is a permit:
a row of `mapping_change_permits` for the session's `CONNECTION_ID()` and login `USER()`. Only
the migration (admin) account may write that table (deploy/registry-grants.sql), so a session
variable or anything else another account can set opens nothing. The sanctioned paths
(`mapping_change_permit`: retiring a mapping, rolling back the legacy migration) insert the
permit and delete it again inside the transaction of their change, and the guard on
`identifiers` writes every change it lets through to `mapping_changes` itself.

The guards on `identifiers` exist only once it has the RFC 083 shape: a registry still holding
the legacy 1:1 table gets them from the legacy migration's swap (before the copy's own guard
goes), never on the legacy table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from idminter_pipeline.core.errors import IdMinterError, SchemaMigrationError
from idminter_pipeline.registry.connection import Connection

PERMITS_TABLE = "mapping_change_permits"
CHANGES_TABLE = "mapping_changes"
RETIRED_TABLE = "retired_canonical_ids"

MAPPING_GUARD_NAMES = ("idminter_mapping_guard_bu", "idminter_mapping_guard_bd")
POOL_GUARD_NAMES = ("idminter_pool_guard_bu", "idminter_pool_guard_bd")
GUARD_NAMES = MAPPING_GUARD_NAMES + POOL_GUARD_NAMES

# The rule each refusal names (in its message, so an operator can look it up in the runbook).
RULE_MAPPING_IMMUTABLE = "mapping-immutable"
RULE_MAPPING_UNDELETABLE = "mapping-undeletable"
RULE_PUBLISHED_ID_KEPT = "published-id-kept"

ER_SIGNAL_EXCEPTION = 1644
ER_TABLEACCESS_DENIED = 1142
ER_BINLOG_CREATE_ROUTINE_NEED_SUPER = 1419

# The session variable the update guard on `canonical_ids` writes its refusal's message to.
REFUSAL_VARIABLE = "@idminter_refused"

# The session holds a permit: checked by every guard before it refuses.
_PERMIT = (
    f"SELECT MAX(Reason) INTO permit FROM {PERMITS_TABLE} "
    "WHERE ConnectionId = CONNECTION_ID() AND Account = USER()"
)


def _same(column: str) -> str:
    # Byte for byte: utf8mb4_bin is PAD SPACE, so 'b3' = 'b3 ' under the column's collation.
    return f"CAST(NEW.{column} AS BINARY) = CAST(OLD.{column} AS BINARY)"


def _refuse(message_sql: str) -> str:
    # SIGNAL takes the message from a variable only; 128 characters is MySQL's limit.
    return (
        f"SET refused = LEFT({message_sql}, 128); "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = refused;"
    )


def _mapping(row: str) -> str:
    return (
        f"{row}.OntologyType, '[', {row}.SourceSystem, '/', {row}.SourceId, '] -> ', "
        f"{row}.CanonicalId"
    )


def _audit(action: str, new: bool) -> str:
    new_values = (
        "NEW.OntologyType, NEW.SourceSystem, NEW.SourceId, NEW.CanonicalId"
        if new
        else "NULL, NULL, NULL, NULL"
    )
    return (
        f"INSERT INTO {CHANGES_TABLE} (Action, OntologyType, SourceSystem, SourceId, CanonicalId, "
        "NewOntologyType, NewSourceSystem, NewSourceId, NewCanonicalId, Account, Reason) VALUES "
        f"('{action}', OLD.OntologyType, OLD.SourceSystem, OLD.SourceId, OLD.CanonicalId, "
        f"{new_values}, USER(), permit);"
    )


_DECLARE = "DECLARE permit VARCHAR(255) DEFAULT NULL; DECLARE refused VARCHAR(128) DEFAULT NULL;"

_ONCE_MAPPED = (
    "(EXISTS (SELECT 1 FROM identifiers i WHERE i.CanonicalId = OLD.CanonicalId) "
    f"OR EXISTS (SELECT 1 FROM {RETIRED_TABLE} r WHERE r.CanonicalId = OLD.CanonicalId) "
    f"OR EXISTS (SELECT 1 FROM {CHANGES_TABLE} m WHERE m.CanonicalId = OLD.CanonicalId) "
    "OR (OLD.Status = 'assigned' AND OLD.AssignedAt IS NOT NULL))"
)


def _mapping_guards(table: str) -> dict[str, str]:
    unchanged = " AND ".join(
        _same(column) for column in ("CanonicalId", "OntologyType", "SourceSystem", "SourceId")
    )
    return {
        "idminter_mapping_guard_bu": (
            f"BEFORE UPDATE ON {table} FOR EACH ROW BEGIN {_DECLARE} "
            f"IF NOT ({unchanged}) THEN {_PERMIT}; "
            "IF permit IS NULL THEN "
            + _refuse(
                f"CONCAT('refused by rule {RULE_MAPPING_IMMUTABLE}: a published mapping keeps "
                f"its ID and key: ', {_mapping('OLD')})"
            )
            + f" END IF; {_audit('updated', new=True)} END IF; END"
        ),
        "idminter_mapping_guard_bd": (
            f"BEFORE DELETE ON {table} FOR EACH ROW BEGIN {_DECLARE} {_PERMIT}; "
            "IF permit IS NULL THEN "
            + _refuse(
                f"CONCAT('refused by rule {RULE_MAPPING_UNDELETABLE}: a published mapping is "
                f"never deleted: ', {_mapping('OLD')})"
            )
            + f" END IF; {_audit('deleted', new=False)} END"
        ),
    }


_HAS_PERMIT = (
    f"EXISTS (SELECT 1 FROM {PERMITS_TABLE} "
    "WHERE ConnectionId = CONNECTION_ID() AND Account = USER())"
)

# What the update guard on `canonical_ids` looks at first: the row goes back to `free`, or its ID
# changes byte for byte (ascii_bin is PAD SPACE, so `<>` alone misses an added trailing space).
_FREED_OR_RENAMED = (
    "(NEW.Status = 'free' AND OLD.Status <> 'free') OR NEW.CanonicalId <> OLD.CanonicalId "
    "OR LENGTH(NEW.CanonicalId) <> LENGTH(OLD.CanonicalId)"
)


def _pool_guards() -> dict[str, str]:
    message = (
        f"CONCAT('refused by rule {RULE_PUBLISHED_ID_KEPT}: ', OLD.CanonicalId, "
        "' is or was mapped and never returns to the pool')"
    )
    return {
        # Fires for every ID the minter marks assigned, so every row pays for its body: one
        # condition, and no DECLAREd variable (each DECLARE is one more statement run on every
        # row the trigger fires for). The refusal's message goes through a user variable
        # instead, which SIGNAL also takes.
        "idminter_pool_guard_bu": (
            f"BEFORE UPDATE ON canonical_ids FOR EACH ROW IF {_FREED_OR_RENAMED} THEN "
            f"IF {_ONCE_MAPPED} AND NOT {_HAS_PERMIT} THEN "
            f"SET {REFUSAL_VARIABLE} = LEFT({message}, 128); "
            f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {REFUSAL_VARIABLE}; END IF; END IF"
        ),
        "idminter_pool_guard_bd": (
            f"BEFORE DELETE ON canonical_ids FOR EACH ROW BEGIN {_DECLARE} "
            f"IF {_ONCE_MAPPED} THEN {_PERMIT}; "
            f"IF permit IS NULL THEN {_refuse(message)} END IF; END IF; END"
        ),
    }


class MappingChangeRefusedError(IdMinterError):
    """A sanctioned change to a mapping asked for by an account that may not make it."""


def _execute(conn: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def trigger_names(conn: Any, table: str) -> set[str]:
    return {
        name
        for (name,) in _execute(
            conn,
            "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE() AND event_object_table = %s",
            (table,),
        )
    }


def create_trigger(
    conn: Any,
    statement: str,
    *,
    error: type[IdMinterError] = SchemaMigrationError,
    rerun: str = "then rerun",
) -> None:
    """Run a CREATE TRIGGER `statement`; a server whose binary log refuses it raises `error`
    saying how to allow it, and `rerun` (what to do next)."""
    try:
        _execute(conn, statement)
    except pymysql.err.OperationalError as refused:
        if refused.args[0] != ER_BINLOG_CREATE_ROUTINE_NEED_SUPER:
            raise
        raise error(
            "the server refuses CREATE TRIGGER: its binary log is on and "
            "log_bin_trust_function_creators is 0. Set it to 1 (Aurora: in the DB cluster "
            f"parameter group; see deploy/registry-grants.sql), {rerun}"
        ) from None


def _create(conn: Any, name: str, body: str) -> None:
    create_trigger(conn, f"CREATE TRIGGER {name} {body}")


def install_pool_guards(conn: Any) -> None:
    """The guards on `canonical_ids` (idempotent)."""
    existing = trigger_names(conn, "canonical_ids")
    for name, body in _pool_guards().items():
        if name not in existing:
            _create(conn, name, body)


def install_mapping_guards(conn: Any, table: str = "identifiers") -> None:
    """The guards on the RFC 083 mapping table `table` (idempotent; they move with a rename)."""
    existing = trigger_names(conn, table)
    for name, body in _mapping_guards(table).items():
        if name not in existing:
            _create(conn, name, body)


def replace_trigger(conn: Any, name: str, body: str) -> None:
    """Give trigger `name` the definition `body` with no moment unguarded: `body` goes in under a
    transient name first (both fire meanwhile), then under `name`, each DDL statement committing
    on its own."""
    transient = f"{name}_next"
    drop_guards(conn, (transient,))
    _create(conn, transient, body)
    drop_guards(conn, (name,))
    _create(conn, name, body)
    drop_guards(conn, (transient,))


def replace_pool_update_guard(conn: Any) -> None:
    """The update guard on `canonical_ids` as this module defines it, in place of the one there."""
    replace_trigger(conn, POOL_GUARD_NAMES[0], _pool_guards()[POOL_GUARD_NAMES[0]])


def drop_guards(conn: Any, names: tuple[str, ...] = GUARD_NAMES) -> None:
    for name in names:
        _execute(conn, f"DROP TRIGGER IF EXISTS {name}")


def is_permit_refusal(error: BaseException) -> bool:
    return (
        isinstance(error, pymysql.err.MySQLError)
        and bool(error.args)
        and (error.args[0] == ER_TABLEACCESS_DENIED and PERMITS_TABLE in str(error.args[-1]))
    )


@contextmanager
def mapping_change_permit(conn: Connection, reason: str) -> Iterator[None]:
    """Within the caller's transaction, let this session change mappings and free once-mapped
    IDs, each mapping change recorded in `mapping_changes` with `reason`. The permit is deleted
    again before the caller commits; rolled back with it otherwise. Only the migration (admin)
    account may take it: others get `MappingChangeRefusedError`."""
    try:
        _execute(
            conn,
            f"INSERT INTO {PERMITS_TABLE} (ConnectionId, Account, Reason) "
            "VALUES (CONNECTION_ID(), USER(), %s) "
            "ON DUPLICATE KEY UPDATE Account = VALUES(Account), Reason = VALUES(Reason)",
            (reason[:255],),
        )
    except pymysql.err.OperationalError as error:
        if not is_permit_refusal(error):
            raise
        raise MappingChangeRefusedError(
            "only the migration (admin) account may change a mapping or return a once-mapped "
            f"ID to the pool; this account cannot write {PERMITS_TABLE} "
            "(docs/deploy/database-accounts.md)"
        ) from None
    try:
        yield
    finally:
        _execute(conn, f"DELETE FROM {PERMITS_TABLE} WHERE ConnectionId = CONNECTION_ID()")


def refused_rule(error: BaseException) -> str | None:
    """The rule a guard named in `error`, or None if it is not a guard's refusal."""
    if not (isinstance(error, pymysql.err.MySQLError) and error.args):
        return None
    if error.args[0] != ER_SIGNAL_EXCEPTION:
        return None
    message = str(error.args[-1])
    for rule in (RULE_MAPPING_IMMUTABLE, RULE_MAPPING_UNDELETABLE, RULE_PUBLISHED_ID_KEPT):
        if f"rule {rule}:" in message:
            return rule
    return None
