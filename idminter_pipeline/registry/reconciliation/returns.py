"""Returning orphaned IDs to the pool: only under a lock that keeps any mapping from taking
them meanwhile, and only those that nothing shows ever identified a record (those are retired
instead: `retired_ids`). Part of the reconciliation's repair (`repair`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from idminter_pipeline.core.canonical_ids import is_canonical_id
from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.reconciliation.keyset import execute
from idminter_pipeline.registry.reconciliation.retired_ids import once_mapped, retire

ORPHANS_TABLE = "reconciliation_orphans"


def placeholders(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


RETURNED = "returned"


def return_orphans_to_pool(
    conn: Connection, candidates: Sequence[str], *, retired: dict[str, str] | None = None
) -> dict[str, str]:
    """Return assigned IDs to the pool if, under lock, no mapping uses them and nothing shows
    that one ever did; say what happened. IDs that once identified a record are retired
    instead (and added to `retired`, ID -> evidence).

    In one REPEATABLE READ transaction: the candidate rows are locked FOR UPDATE, and the
    locking read of `identifiers` by CanonicalId holds next-key locks on idx_canonical, so no
    mapping can take one of these IDs between the check and the update.
    """
    outcome: dict[str, str] = {}
    candidates = list(candidates)
    if not candidates:
        return outcome
    execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try:
        locked = {
            value
            for (value,) in execute(
                conn,
                "SELECT CanonicalId FROM canonical_ids "
                f"WHERE CanonicalId IN ({placeholders(candidates)}) AND Status = 'assigned' "
                "FOR UPDATE",
                candidates,
            )
        }
        used = {
            value
            for (value,) in execute(
                conn,
                "SELECT CanonicalId FROM identifiers "
                f"WHERE CanonicalId IN ({placeholders(candidates)}) LOCK IN SHARE MODE",
                candidates,
            )
        }
        evidence = once_mapped(conn, [c for c in candidates if c in locked and c not in used])
        newly_retired = set(retire(conn, evidence))
        if retired is not None:
            retired.update({c: evidence[c] for c in newly_retired})
        free = []
        for canonical in candidates:
            if canonical not in locked:
                outcome[canonical] = "kept: no longer an assigned ID"
            elif canonical in used:
                outcome[canonical] = "kept: a mapping uses it"
            elif canonical in evidence:
                outcome[canonical] = (
                    f"kept and retired: once identified a record ({evidence[canonical]})"
                )
            elif not is_canonical_id(canonical):
                outcome[canonical] = "kept: breaks today's ID format, never handed out again"
            else:
                free.append(canonical)
                outcome[canonical] = RETURNED
        if free:
            execute(
                conn,
                f"UPDATE canonical_ids SET Status = 'free' WHERE CanonicalId IN "
                f"({placeholders(free)})",
                free,
            )
            execute(
                conn,
                f"DELETE FROM {ORPHANS_TABLE} WHERE CanonicalId IN ({placeholders(free)})",
                free,
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        execute(conn, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return outcome
