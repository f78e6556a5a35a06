"""The update guard on `canonical_ids` with a fast path: one condition and no declared variable
per row, since it fires for every ID the minter marks assigned (registry/invariants.py,
docs/design/registry-invariants.md). It refuses exactly what the guard before it refused.

Each direction swaps the trigger in under a transient name first, so the table is never
unguarded; the rollback puts back the guard that declares its variables, as written here.
"""

from yoyo import step

from idminter_pipeline.registry.connection import Connection
from idminter_pipeline.registry.invariants import (
    POOL_GUARD_NAMES,
    replace_pool_update_guard,
    replace_trigger,
)

__depends__ = {"0010_adoption_mapping_checkpoint"}

GUARD_DECLARING_ITS_VARIABLES = (
    "BEFORE UPDATE ON canonical_ids FOR EACH ROW BEGIN DECLARE permit VARCHAR(255) DEFAULT NULL; "
    "DECLARE refused VARCHAR(128) DEFAULT NULL; IF (NEW.Status = 'free' AND OLD.Status <> 'free') "
    "OR NOT (CAST(NEW.CanonicalId AS BINARY) = CAST(OLD.CanonicalId AS BINARY)) THEN "
    "IF (EXISTS (SELECT 1 FROM identifiers i WHERE i.CanonicalId = OLD.CanonicalId) "
    "OR EXISTS (SELECT 1 FROM retired_canonical_ids r WHERE r.CanonicalId = OLD.CanonicalId) "
    "OR EXISTS (SELECT 1 FROM mapping_changes m WHERE m.CanonicalId = OLD.CanonicalId) "
    "OR (OLD.Status = 'assigned' AND OLD.AssignedAt IS NOT NULL)) THEN "
    "SELECT MAX(Reason) INTO permit FROM mapping_change_permits "
    "WHERE ConnectionId = CONNECTION_ID() AND Account = USER(); IF permit IS NULL THEN "
    "SET refused = LEFT(CONCAT('refused by rule published-id-kept: ', OLD.CanonicalId, "
    "' is or was mapped and never returns to the pool'), 128); "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = refused; END IF; END IF; END IF; END"
)


def apply(conn: Connection) -> None:
    replace_pool_update_guard(conn)


def rollback(conn: Connection) -> None:
    replace_trigger(conn, POOL_GUARD_NAMES[0], GUARD_DECLARING_ITS_VARIABLES)


steps = [step(apply, rollback)]
